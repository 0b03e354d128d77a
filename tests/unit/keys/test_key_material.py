"""Unreadable key material and copy passwords are reasons (never a crash, never quoted)."""
from __future__ import annotations

import base64

import pytest

from ssvm_operator.controllers.keys.secrets import KeyMaterialError, KeyStore
from ssvm_operator.ssh.keys import generate_keypair
from tests.support.guest_world import NS, run
from tests.support.memory_secrets import MemorySecretsApi

GARBAGE = b"\xff\xfe\x00-----BEGIN OPENSSH PRIVATE KEY-----\xc3\x28secret-bytes"


def _zone(**secondary):
    return {"metadata": {"namespace": NS, "name": "z1", "uid": "u1"}, "spec": {"secondaryStorage": secondary}}


def _put(api, name, **data: bytes):
    api.put(NS, {"metadata": {"name": name}, "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})


def _reason(coro):
    with pytest.raises(KeyMaterialError) as caught:
        run(coro)
    assert "secret-bytes" not in caught.value.message and "\\xff" not in caught.value.message
    return caught.value.reason


def test_an_ssh_key_that_is_not_utf8_is_ssh_key_invalid():
    api = MemorySecretsApi()
    _put(api, "op-key", key=GARBAGE)
    assert _reason(KeyStore(api).operator_keys(_zone(sshKeySecretRef={"name": "op-key", "key": "key"}))) == "SSHKeyInvalid"


def test_a_bad_next_key_leaves_the_current_one_working():
    api = MemorySecretsApi()
    good = generate_keypair("t").private_openssh.encode()
    _put(api, "op-key", key=good, **{"key.next": GARBAGE})
    keys = run(KeyStore(api).operator_keys(_zone(sshKeySecretRef={"name": "op-key", "key": "key"})))
    assert keys.next is None and "not UTF-8" in keys.next_error


@pytest.mark.parametrize("value,reason", [
    (None, "CopyPasswordSecretNotFound"),
    (b"", "CopyPasswordMissing"),
    (b"\xff\xfe secret-bytes", "CopyPasswordInvalid"),
    (b"x" * 257, "CopyPasswordInvalid"),
    (b"two words", "CopyPasswordInvalid"),
    (b"line\nbreak", "CopyPasswordInvalid"),
], ids=["missing-secret", "empty", "not-utf8", "oversized", "space", "newline"])
def test_copy_password_problems_are_reasons(value, reason):
    api = MemorySecretsApi()
    if value is not None:
        _put(api, "copy", password=value)
    assert _reason(KeyStore(api).copy_password(_zone(copyPasswordSecretRef={"name": "copy", "key": "password"}))) == reason


def test_a_good_copy_password_is_read():
    api = MemorySecretsApi()
    _put(api, "copy", password=b"s3cr3t:with-colon!")
    assert run(KeyStore(api).copy_password(_zone(copyPasswordSecretRef={"name": "copy", "key": "password"}))).value == "s3cr3t:with-colon!"
