"""Bad key material and bad names on both control planes: each is a reason on the objects it concerns,
rolled up to the zone, and the operator neither crashes nor loops on it."""
from __future__ import annotations

import base64

import pytest
from kubernetes import client as k8s
from ssvm_operator import constants as c

from .harness import Api, OperatorThread, condition, wait_for
from .test_guest_ops import gapi, guest_cluster  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
IMAGE = {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}}
GARBAGE = b"\xff\xfe\x00-----BEGIN OPENSSH PRIVATE KEY-----\xc3\x28"


def _secret(api: Api, name: str, data: dict[str, bytes]) -> None:
    body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), data={k: base64.b64encode(v).decode() for k, v in data.items()})
    api.core.create_namespaced_secret(api.ns, body)


def _events(api: Api, type_: str) -> list[dict]:
    return sorted((e for e in api.events() if e["type"] == type_), key=lambda e: (e["involved_object"]["name"], e["reason"]))


def _zone_ready(api: Api, name: str, reason: str):
    def check():
        zone = api.get(c.ZONE_PLURAL, name)
        ready = condition(zone, "Ready")
        return ready if ready.get("reason") == reason else None
    return check


def test_an_ssh_key_that_is_not_utf8_is_ssh_key_invalid(gapi):  # noqa: F811
    _secret(gapi, "bad-key", {"ssh-privatekey": GARBAGE})
    gapi.create(c.ZONE_PLURAL, c.ZONE_KIND, "z1", {"secondaryStorage": {
        "template": IMAGE, "sshKeySecretRef": {"name": "bad-key", "key": "ssh-privatekey"}}})
    gapi.store("s1", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        ssvm = wait_for("the SSVM says SSHKeyInvalid", lambda: (s := gapi.get(c.SSVM_PLURAL, "z1-ssvm-1")) and any(
            x.get("reason") == "SSHKeyInvalid" and x["status"] == "False" for x in (s.get("status") or {}).get("conditions", [])) and s,
            timeout=60)
        assert ssvm["status"].get("state"), "the SSVM has a state"
        ready = wait_for("the zone rolls it up", _zone_ready(gapi, "z1", "SSVMsFailing"), timeout=30)
        assert "SSHKeyInvalid" in ready["message"] and "\\xff" not in ready["message"]
        op.check()


def test_a_missing_copy_password_secret_is_a_reason_on_the_ssvm_and_the_zone(gapi):  # noqa: F811
    gapi.create(c.ZONE_PLURAL, c.ZONE_KIND, "z1", {"secondaryStorage": {
        "template": IMAGE, "copyPasswordSecretRef": {"name": "copy", "key": "password"}}})
    gapi.store("s1", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        ssvm = wait_for("the SSVM says CopyPasswordSecretNotFound", lambda: (s := gapi.get(c.SSVM_PLURAL, "z1-ssvm-1")) and
                        condition(s, "Ready").get("reason") == "CopyPasswordSecretNotFound" and s, timeout=60)
        assert ssvm["status"]["state"] == "Running"
        assert condition(ssvm, "StoresMounted")["reason"] == "CopyPasswordSecretNotFound"
        ready = wait_for("the zone rolls it up", _zone_ready(gapi, "z1", "SSVMsFailing"), timeout=30)
        assert ready["message"].startswith("1 of 1 SSVMs CopyPasswordSecretNotFound")
        warnings = wait_for("one Warning on the SSVM and one on the zone", lambda: (w := _events(gapi, "Warning")) and
                            {"z1-ssvm-1", "z1"} <= {e["involved_object"]["name"] for e in w} and w)
        assert [(e["involved_object"]["name"], e["reason"]) for e in warnings] == \
            [("z1", "SSVMsFailing"), ("z1-ssvm-1", "CopyPasswordSecretNotFound")]
        _secret(gapi, "copy", {"password": b"a-good-copy-password"})
        wait_for("the zone Ready once the Secret exists", _zone_ready(gapi, "z1", "SSVMsRunning"), timeout=60)
        assert condition(gapi.get(c.SSVM_PLURAL, "z1-ssvm-1"), "StoresMounted")["status"] == "True"
        recovered = wait_for("Recovered on both", lambda: (r := [e for e in _events(gapi, "Normal") if e["reason"] == "Recovered"])
                             and len(r) == 2 and r)
        assert {e["involved_object"]["name"] for e in recovered} == {"z1", "z1-ssvm-1"}
        assert len(_events(gapi, "Warning")) == 2, "no repeated Warning while it lasted"
        assert {e["reporting_component"] for e in gapi.events()} == {"ssvm-operator"}, "every Event from ssvm-operator, none from kopf"
        op.check()


def test_a_zone_name_of_63_characters_converges_and_64_is_refused(gapi):  # noqa: F811
    name = "z" * 63
    with pytest.raises(k8s.ApiException) as refused:
        gapi.create(c.ZONE_PLURAL, c.ZONE_KIND, name + "z", {"secondaryStorage": {"template": IMAGE}})
    assert refused.value.status == 422 and "metadata.name" in refused.value.body and "at most 63" in refused.value.body
    gapi.create(c.ZONE_PLURAL, c.ZONE_KIND, name, {"secondaryStorage": {"template": IMAGE}})
    gapi.store("s1", name)
    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        wait_for("the long zone Ready", _zone_ready(gapi, name, "SSVMsRunning"), timeout=60)
        (ssvm,) = gapi.ssvms().values()
        assert len(ssvm["metadata"]["name"]) <= 63
        for key in ("setupStore", "firewall", "vmSetup"):
            record = wait_for(f"{key} applied", lambda: (r := (gapi.get(c.SSVM_PLURAL, ssvm["metadata"]["name"])["status"].get("actions")
                                                               or {}).get(key)) and r.get("result") == "Succeeded" and r)
            assert record["appliedHash"] == record["desiredHash"]
        op.check()


def test_store_conditions_tell_the_truth_before_any_ssvm_and_after_the_zone_goes(gapi):  # noqa: F811
    gapi.create(c.ZONE_PLURAL, c.ZONE_KIND, "z1", {"secondaryStorage": {"template": IMAGE, "enabled": False}})
    gapi.store("s1", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        store = wait_for("Mounted evaluated without any running SSVM", lambda: (s := gapi.get(c.IMAGESTORE_PLURAL, "s1")) and
                         condition(s, "Mounted").get("reason") == "NoRunningSSVM" and s, timeout=30)
        assert condition(store, "Ready")["reason"] in ("NoRunningSSVM", "Initializing")
        wait_for("ZoneFound True (the zone's loop sets it)", lambda: condition(gapi.get(c.IMAGESTORE_PLURAL, "s1"), "ZoneFound").get("status") == "True")
        wait_for("Ready follows Mounted", lambda: condition(gapi.get(c.IMAGESTORE_PLURAL, "s1"), "Ready").get("reason") == "NoRunningSSVM")
        gapi.delete(c.ZONE_PLURAL, "z1")
        store = wait_for("ZoneFound rewritten once the zone is gone", lambda: (s := gapi.get(c.IMAGESTORE_PLURAL, "s1")) and
                         condition(s, "ZoneFound").get("status") == "False" and s, timeout=30)
        assert condition(store, "ZoneFound")["reason"] == "ZoneNotFound" and "was deleted" in condition(store, "ZoneFound")["message"]
        wait_for("Ready follows ZoneFound", lambda: condition(gapi.get(c.IMAGESTORE_PLURAL, "s1"), "Ready").get("reason") == "ZoneNotFound")
        op.check()
