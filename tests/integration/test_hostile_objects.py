"""Forty-odd malformed and hostile objects against a running operator, on both control planes: each is
refused at apply with a message naming the field, or admitted and reported `Ready=False` with a reason;
the operator never crashes, nothing injected runs in a guest, no secret leaks, and a good zone beside
them converges to exactly what its rules ask."""
from __future__ import annotations

import copy
import logging
import pathlib

import pytest
from kubernetes import client as k8s
from ssvm_operator import constants as c

from .harness import Api, OperatorThread, condition, wait_for
from .test_hostile_input import _secret
from .test_guest_ops import gapi, guest_cluster  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
IMAGE = {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}}
GOOD_URL = "nfs://10.0.0.5/export/good"
COPY_GARBAGE = b"\xff\xfe\x00\x01pw"   # not UTF-8: never a usable password, never to be echoed
SSH_GARBAGE = b"\xff\xfe\x00-----BEGIN OPENSSH PRIVATE KEY-----\xc3\x28"
IMAGE_FIELD = "spec.secondaryStorage.template.kubevirt.containerDiskImage"
PLURAL = {c.ZONE_KIND: c.ZONE_PLURAL, c.IMAGESTORE_KIND: c.IMAGESTORE_PLURAL, c.SSVM_KIND: c.SSVM_PLURAL}


def _zone(**secondary):
    return {"secondaryStorage": {"template": copy.deepcopy(IMAGE), **secondary}}


def _zone_with(path: str, value):
    """A valid zone spec with one dotted path set (parents created)."""
    spec = _zone()
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return spec


def _image(reference: str):
    return _zone(template={"kubevirt": {"containerDiskImage": reference}})


def _store(url=GOOD_URL + "-x", **spec):
    return {"zoneRef": "good", "url": url, **spec}


def refused_cases(marker: pathlib.Path) -> list[tuple[str, str, str, dict, str]]:
    """(case, kind, name, spec, the field the refusal must name)."""
    inject = f"$(touch${{IFS}}{marker})"
    huge = "a" * 100_000
    return [
        # wrong types
        ("type-min-running", c.ZONE_KIND, "h-type-min", _zone(minRunning="three"), "spec.secondaryStorage.minRunning"),
        ("type-dns-string", c.ZONE_KIND, "h-type-dns", {**_zone(), "dns": "8.8.8.8"}, "spec.dns"),
        ("type-enabled", c.ZONE_KIND, "h-type-enabled", _zone(enabled="yes"), "spec.secondaryStorage.enabled"),
        ("type-template-list", c.ZONE_KIND, "h-type-template", {"secondaryStorage": {"template": ["img:1"]}}, "spec.secondaryStorage.template"),
        ("type-read-only", c.IMAGESTORE_KIND, "h-type-ro", _store(readOnly="no"), "spec.readOnly"),
        ("type-mount-options", c.IMAGESTORE_KIND, "h-type-mo", _store(mountOptions="timeo=600"), "spec.mountOptions"),
        ("type-desired-state", c.SSVM_KIND, "h-type-ds", {"zoneRef": "good", "desiredState": 5}, "spec.desiredState"),
        ("type-url-number", c.IMAGESTORE_KIND, "h-type-url", _store(url=12345), "spec.url"),
        # huge strings and lists
        ("huge-image", c.ZONE_KIND, "h-huge-image", _image(huge), IMAGE_FIELD),
        ("huge-url", c.IMAGESTORE_KIND, "h-huge-url", _store(url="nfs://10.0.0.5/" + huge), "spec.url"),
        ("huge-mount-options", c.IMAGESTORE_KIND, "h-huge-mo", _store(mountOptions=["timeo=600"] * 1000), "spec.mountOptions"),
        ("huge-sites", c.ZONE_KIND, "h-huge-sites", _zone(allowedInternalSites=["10.0.0.1"] * 10_000), "spec.secondaryStorage.allowedInternalSites"),
        ("huge-dns", c.ZONE_KIND, "h-huge-dns", {**_zone(), "dns": ["10.0.0.1"] * 100}, "spec.dns"),
        ("huge-proxy", c.ZONE_KIND, "h-huge-proxy", _zone(httpProxy="http://" + huge), "spec.secondaryStorage.httpProxy"),
        ("huge-secret-name", c.ZONE_KIND, "h-huge-secret", _zone(copyPasswordSecretRef={"name": huge, "key": "password"}),
         "copyPasswordSecretRef.name"),
        # invalid CIDRs, addresses, URLs
        ("cidr-prefix", c.ZONE_KIND, "h-cidr-prefix", _zone(allowedInternalSites=["10.0.0.0/33"]), "spec.secondaryStorage.allowedInternalSites"),
        ("cidr-network", c.ZONE_KIND, "h-cidr-net", _zone_with("networks.storage", {"networkName": "storage-net", "cidr": "10.2.0.0/99"}),
         "spec.networks.storage.cidr"),
        ("gateway-name", c.ZONE_KIND, "h-gateway", _zone_with("networks.public", {"networkName": "public-net", "gateway": "not-an-ip"}),
         "spec.networks.public.gateway"),
        ("management-host", c.ZONE_KIND, "h-mgmt-host", _zone_with("management.host", "10.0.0.1;reboot"), "spec.management.host"),
        ("url-http", c.IMAGESTORE_KIND, "h-url-http", _store(url="http://10.0.0.5/export"), "spec.url"),
        ("url-empty-host", c.IMAGESTORE_KIND, "h-url-nohost", _store(url="nfs:///export"), "spec.url"),
        ("url-space", c.IMAGESTORE_KIND, "h-url-space", _store(url="nfs://10.0.0.5/export; reboot"), "spec.url"),
        ("url-newline", c.IMAGESTORE_KIND, "h-url-newline", _store(url="nfs://10.0.0.5/export\nreboot"), "spec.url"),
        ("url-unicode", c.IMAGESTORE_KIND, "h-url-unicode", _store(url="nfs://10.0.0.5/éxport"), "spec.url"),
        ("proxy-shell", c.ZONE_KIND, "h-proxy-shell", _zone(httpProxy="http://proxy:3128/`id`"), "spec.secondaryStorage.httpProxy"),
        # image references that are not OCI references
        ("image-semicolon", c.ZONE_KIND, "h-img-semi", _image(f"img:1;{inject}"), IMAGE_FIELD),
        ("image-subshell", c.ZONE_KIND, "h-img-sub", _image(inject), IMAGE_FIELD),
        ("image-unicode", c.ZONE_KIND, "h-img-uni", _image("régistry.example/img:1"), IMAGE_FIELD),
        ("image-space", c.ZONE_KIND, "h-img-space", _image("img:1 --privileged"), IMAGE_FIELD),
        ("image-bad-digest", c.ZONE_KIND, "h-img-digest", _image("img@sha256:xyz"), IMAGE_FIELD),
        # unicode and shell metacharacters in names and references
        ("name-unicode", c.ZONE_KIND, "zöne", _zone(), "metadata.name"),
        ("name-shell", c.ZONE_KIND, "z;reboot", _zone(), "metadata.name"),
        ("name-subshell", c.IMAGESTORE_KIND, "s$(id)", _store(), "metadata.name"),
        ("name-upper", c.SSVM_KIND, "SSVM-1", {"zoneRef": "good"}, "metadata.name"),
        ("zone-ref-shell", c.IMAGESTORE_KIND, "h-zref-shell", {**_store(), "zoneRef": "good;reboot"}, "spec.zoneRef"),
        ("zone-ref-unicode", c.SSVM_KIND, "h-zref-uni", {"zoneRef": "gööd"}, "spec.zoneRef"),
        ("secret-name-path", c.ZONE_KIND, "h-secret-path", _zone(copyPasswordSecretRef={"name": "../etc/shadow", "key": "password"}),
         "copyPasswordSecretRef.name"),
        ("secret-key-shell", c.ZONE_KIND, "h-secret-key", _zone(sshKeySecretRef={"name": "k", "key": "id;cat /etc/shadow"}), "sshKeySecretRef.key"),
        # mount options: only `name` or `name=value` of safe characters
        ("mount-option-shell", c.IMAGESTORE_KIND, "h-mo-shell", _store(mountOptions=[f"timeo=600;{inject}"]), "spec.mountOptions"),
        ("mount-option-comma", c.IMAGESTORE_KIND, "h-mo-comma", _store(mountOptions=["ro,remount"]), "spec.mountOptions"),
        ("mount-option-newline", c.IMAGESTORE_KIND, "h-mo-nl", _store(mountOptions=["vers=3\n"]), "spec.mountOptions"),
        ("mount-option-unicode", c.IMAGESTORE_KIND, "h-mo-uni", _store(mountOptions=["timéo=600"]), "spec.mountOptions"),
        ("nfs-version", c.IMAGESTORE_KIND, "h-nfs-version", _store(nfsVersion="5"), "spec.nfsVersion"),
    ]


def _create(api: Api, kind: str, name: str, spec) -> dict:
    body = {"apiVersion": c.API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    return api.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, api.ns, PLURAL[kind], body)



# (object, the reason its Ready must carry): admitted, then judged by the operator
REPORTED = [
    (c.IMAGESTORE_PLURAL, "h-no-zone", "ZoneNotFound"),
    (c.SSVM_PLURAL, "h-ssvm-no-zone", "ZoneNotFound"),
    (c.IMAGESTORE_PLURAL, "h-dup", "DuplicateURL"),
    (c.IMAGESTORE_PLURAL, "h-dup-slash", "DuplicateURL"),
    (c.SSVM_PLURAL, "h-copy-missing-ssvm-1", "CopyPasswordSecretNotFound"),
    (c.SSVM_PLURAL, "h-copy-key-ssvm-1", "CopyPasswordMissing"),
    (c.SSVM_PLURAL, "h-copy-garbage-ssvm-1", "CopyPasswordInvalid"),
    (c.SSVM_PLURAL, "h-ssh-key-ssvm-1", "SSHKeyMissing"),
    (c.SSVM_PLURAL, "h-ssh-garbage-ssvm-1", "SSHKeyInvalid"),
]


def _admit_the_judged(api: Api, marker: pathlib.Path) -> None:
    _create(api, c.IMAGESTORE_KIND, "h-no-zone", {"zoneRef": "nowhere", "url": "nfs://10.0.0.5/export/nowhere"})
    _create(api, c.SSVM_KIND, "h-ssvm-no-zone", {"zoneRef": "nowhere"})
    _create(api, c.IMAGESTORE_KIND, "h-dup", _store(url=GOOD_URL))
    _create(api, c.IMAGESTORE_KIND, "h-dup-slash", _store(url="nfs://10.0.0.5//export/good/"))
    # printable characters a shell would act on are legal in an export path: the guest must take them as data
    _create(api, c.IMAGESTORE_KIND, "good-meta", _store(url=f"nfs://10.0.0.5/export/$(touch${{IFS}}{marker})`id`;x"))
    _secret(api, "copy-wrong-key", {"pass": b"a-good-copy-password"})
    _secret(api, "copy-garbage", {"password": COPY_GARBAGE})
    _secret(api, "ssh-wrong-key", {"id_rsa": b"not the key asked for"})
    _secret(api, "ssh-garbage", {"ssh-privatekey": SSH_GARBAGE})
    for zone, secondary in [
        ("h-copy-missing", {"copyPasswordSecretRef": {"name": "copy-nowhere", "key": "password"}}),
        ("h-copy-key", {"copyPasswordSecretRef": {"name": "copy-wrong-key", "key": "password"}}),
        ("h-copy-garbage", {"copyPasswordSecretRef": {"name": "copy-garbage", "key": "password"}}),
        ("h-ssh-key", {"sshKeySecretRef": {"name": "ssh-wrong-key", "key": "ssh-privatekey"}}),
        ("h-ssh-garbage", {"sshKeySecretRef": {"name": "ssh-garbage", "key": "ssh-privatekey"}}),
    ]:
        _create(api, c.ZONE_KIND, zone, _zone(**secondary))
        _create(api, c.IMAGESTORE_KIND, f"{zone}-s1", {"zoneRef": zone, "url": f"nfs://10.0.0.5/export/{zone}"})


def _reason(api: Api, plural: str, name: str, reason: str, seen: dict[str, str]):
    """A probe: the Ready condition once it is False with `reason`; `seen` keeps the last reason read."""
    def check():
        ready = condition(api.get(plural, name), "Ready")
        seen[name] = f"{ready.get('status')} {ready.get('reason')}"
        return ready if (ready.get("status"), ready.get("reason")) == ("False", reason) else None
    return check


def test_hostile_objects_are_refused_or_reported_and_a_good_zone_converges(gapi, guest_cluster, tmp_path, caplog):  # noqa: F811
    _, guests = guest_cluster
    caplog.set_level(logging.DEBUG)
    marker = tmp_path / "pwned"
    refused = refused_cases(marker)
    _create(gapi, c.ZONE_KIND, "good", _zone(health={"intervalSeconds": 5, "failureThreshold": 3}))
    _create(gapi, c.IMAGESTORE_KIND, "good-s1", _store(url=GOOD_URL))
    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        wrong = []
        for case, kind, name, spec, field in refused:
            try:
                _create(gapi, kind, name, spec)
                wrong.append(f"{case}: admitted")
            except k8s.ApiException as e:
                if e.status not in (400, 422) or field not in (e.body or ""):
                    wrong.append(f"{case}: {e.status} {(e.body or '')[:300]}")
        assert not wrong, wrong
        # a store moved to another zone, and its URL changed: immutable
        for patch, field in (({"spec": {"zoneRef": "h-copy-key"}}, "spec.zoneRef"), ({"spec": {"url": GOOD_URL + "2"}}, "spec.url")):
            with pytest.raises(k8s.ApiException) as moved:
                gapi.patch(c.IMAGESTORE_PLURAL, "good-s1", patch)
            assert moved.value.status == 422 and field in moved.value.body and "immutable" in moved.value.body, moved.value.body
        _admit_the_judged(gapi, marker)

        seen: dict[str, str] = {}
        for plural, name, reason in REPORTED:
            try:
                wait_for(f"{name} Ready=False {reason}", _reason(gapi, plural, name, reason, seen), timeout=120)
            except AssertionError:
                pytest.fail(f"{name}: Ready is {seen.get(name)}, not False {reason}; all read so far: {seen}")
        good = wait_for("the good zone's 2 SSVMs Running, Ready and healthy", lambda: _good_ready(gapi), timeout=120)
        assert sorted(good) == ["good-ssvm-1", "good-ssvm-2"], "one SSVM per distinct store: duplicates not counted"
        zone = wait_for("the good zone Ready", lambda: (z := gapi.get(c.ZONE_PLURAL, "good")) and
                        condition(z, "Ready").get("status") == "True" and z, timeout=60)
        assert zone["status"]["imageStores"] == 2 and zone["status"]["desiredSSVMs"] == 2
        for name in ("h-copy-key", "h-ssh-garbage"):
            assert condition(gapi.get(c.ZONE_PLURAL, name), "Ready")["reason"] == "SSVMsFailing"
        store = wait_for("the metacharacter store mounted as data", lambda: (s := gapi.get(c.IMAGESTORE_PLURAL, "good-meta")) and
                         condition(s, "Ready").get("status") == "True" and s, timeout=60)
        assert store["status"]["mounts"], store["status"]
        op.check()
    assert not marker.exists(), "a command injected through an object ran"
    assert not any(marker.name in str(p) for p in pathlib.Path(guests.root).rglob("*")), "an injected name became a path"
    _assert_no_secret_anywhere(gapi, caplog)


def _good_ready(api: Api):
    ssvms = {n: s for n, s in api.ssvms().items() if n.startswith("good-")}
    ok = len(ssvms) == 2 and all(s.get("status", {}).get("state") == "Running" and condition(s, "Ready").get("status") == "True"
                                 and (s["status"].get("health") or {}).get("healthy") for s in ssvms.values())
    return ssvms if ok else None


def _assert_no_secret_anywhere(api: Api, caplog) -> None:
    needles = ["a-good-copy-password", "OPENSSH PRIVATE KEY", COPY_GARBAGE.decode("latin-1"), "\\xff\\xfe"]
    texts = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    texts += [str(o.get("status")) for plural in PLURAL.values() for o in api.list(plural)]
    texts += [f"{e['reason']} {e['message']}" for e in api.events()]
    leaks = [(n, t[:200]) for t in texts for n in needles if n in t]
    assert not leaks, leaks[:3]
