from __future__ import annotations

import json
import logging

from ssvm_operator.controllers.guest.hashing import action_hash, canonical_json, hashable_view
from ssvm_operator.ssh.keys import generate_keypair
from ssvm_operator.model.redaction import REDACTED, RedactingFilter, collect_secrets, is_secret_key, redact, redact_text

PAYLOAD = {"allowedInternalSites": ["10.0.0.0/8"], "copyUser": "cloud", "copyPassword": "s3cret-pass",
           "tls": {"certificate": "CERT", "privateKey": "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----"}}


def test_canonical_json_ignores_key_order():
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == canonical_json({"a": [1, {"c": 3, "d": 2}], "b": 1})


def test_hash_is_stable_and_changes_with_every_material_field():
    base = action_hash("vm-setup", PAYLOAD)
    assert base.startswith("sha256:") and base == action_hash("vm-setup", json.loads(json.dumps(PAYLOAD)))
    assert base != action_hash("firewall", PAYLOAD)
    for change in ({"allowedInternalSites": ["10.0.0.0/16"]}, {"copyUser": "root"}, {"copyPassword": "other-pass"},
                   {"tls": {**PAYLOAD["tls"], "privateKey": "other key"}}, {"extra": None}):
        assert action_hash("vm-setup", {**PAYLOAD, **change}) != base, change


def test_hash_input_never_holds_a_secret_in_clear():
    view = json.dumps(hashable_view(PAYLOAD))
    assert "s3cret-pass" not in view and "BEGIN PRIVATE KEY" not in view
    assert "s3cret-pass" not in action_hash("vm-setup", PAYLOAD)


def test_secret_versions_replace_the_digest():
    view = hashable_view({"payloads": [PAYLOAD]}, {"payloads[].copyPassword": "1234"})
    assert view["payloads"][0]["copyPassword"] == {"secretVersion": "1234"}
    assert view["payloads"][0]["tls"]["privateKey"]["secretDigest"].startswith("pbkdf2-sha256:")
    one = action_hash("vm-setup", {"copyPassword": "a-password"}, {"copyPassword": "7"})
    two = action_hash("vm-setup", {"copyPassword": "another-password"}, {"copyPassword": "7"})
    assert one == two  # with a version, the version alone stands for the secret
    assert one != action_hash("vm-setup", {"copyPassword": "a-password"}, {"copyPassword": "8"})


def test_secret_key_names():
    for key in ("copyPassword", "password", "private_key", "privateKey", "apiToken", "passphrase", "client-secret"):
        assert is_secret_key(key), key
    for key in ("copyPasswordSecretRef", "sshKeySecretRef", "secretVersion", "copyUser", "hostKey", "peers", "secretName"):
        assert not is_secret_key(key), key


def test_redact_removes_secret_values_at_any_depth_and_known_strings():
    doc = {"a": [{"copyPassword": "s3cret-pass"}], "msg": "failed with s3cret-pass inside", "n": 3,
           "ref": {"copyPasswordSecretRef": {"name": "pw"}}}
    out = redact(doc, collect_secrets(doc))
    assert out == {"a": [{"copyPassword": REDACTED}], "msg": f"failed with {REDACTED} inside", "n": 3,
                   "ref": {"copyPasswordSecretRef": {"name": "pw"}}}
    assert doc["a"][0]["copyPassword"] == "s3cret-pass"  # the input is not modified


def test_redact_text_removes_key_blocks_and_basic_auth():
    pair = generate_keypair()
    text = f"key:\n{pair.private_openssh}\nAuthorization: Basic Y2xvdWQ6cGFzcw==\nend"
    out = redact_text(text)
    assert "PRIVATE KEY" not in out and "Y2xvdWQ6cGFzcw==" not in out and out.endswith("end")
    assert pair.private_openssh.splitlines()[1] not in out


def test_redacting_filter_scrubs_messages_args_and_tracebacks(caplog):
    logger = logging.getLogger("test.redaction")
    filt = RedactingFilter(["hunter2-secret"])
    logger.addFilter(filt)
    try:
        with caplog.at_level(logging.INFO, logger="test.redaction"):
            logger.info("pushing %s", {"copyPassword": "hunter2-secret"})
            try:
                raise ValueError("bad hunter2-secret")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.removeFilter(filt)
    assert "hunter2-secret" not in caplog.text
    assert REDACTED in caplog.text
