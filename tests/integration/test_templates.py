"""Templates end to end: the KubeVirt simulator, simulated guests running the real agent (their store
mounts shared per export, as NFS clients share a store), the operator, and an HTTP server of the test
that serves images slowly, drops connections and stalls on request."""
from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from ssvm_devcluster.sim_guests import GuestSimulator
from ssvm_operator import constants as c
from ssvm_operator.agent.effects import export_dir
from ssvm_operator.controllers.template.worker import TemplateSettings

from tests.clusters import CONTROL_PLANES, Cluster
from tests.support.http_source import Behaviour, HttpSource, qcow2_image, sha256

from .harness import Api, OperatorThread, condition, guest_cluster_of, ready_ssvms, wait_for

pytestmark = pytest.mark.integration
CONTROL_RANGE = "127.83.0.0/16"
SETTINGS = TemplateSettings(poll_seconds=0.5, verify_seconds=3.0, checksum_seconds=3.0, link_ttl_seconds=5.0)


@pytest.fixture(scope="module", params=CONTROL_PLANES)
def template_cluster(request, tmp_path_factory) -> Iterator[tuple[Cluster, GuestSimulator]]:
    with guest_cluster_of(request, tmp_path_factory, CONTROL_RANGE) as both:   # copy servers on port 80, as in VMs
        yield both


@pytest.fixture()
def tapi(template_cluster, monkeypatch) -> Api:
    cluster, _ = template_cluster
    monkeypatch.setenv("KUBECONFIG", str(cluster.operator_kubeconfig_path))
    return Api(str(cluster.kubeconfig_path), cluster.namespace("t"))


@pytest.fixture()
def source() -> Iterator[HttpSource]:
    server = HttpSource().start()
    yield server
    server.stop()


def _zone(api: Api, name: str) -> None:
    api.create(c.ZONE_PLURAL, c.ZONE_KIND, name, {"secondaryStorage": {
        "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}},
        "allowedInternalSites": ["127.0.0.1"], "health": {"intervalSeconds": 5, "failureThreshold": 3}}})


def _template(api: Api, name: str, url: str, zones: list[str], **spec) -> None:
    api.create(c.TEMPLATE_PLURAL, c.TEMPLATE_KIND, name, {
        "url": url, "format": "QCOW2", "zones": zones,
        "download": {"stallTimeoutSeconds": 5, "retryBaseSeconds": 1, "maxAttempts": 3}, **spec})


def _entries(api: Api, name: str) -> dict[str, dict]:
    return {e["store"]: e for e in ((api.get(c.TEMPLATE_PLURAL, name) or {}).get("status") or {}).get("stores") or []}


def _ready(api: Api, name: str, stores: int):
    def check():
        t = api.get(c.TEMPLATE_PLURAL, name)
        ok = (t and condition(t, "Ready").get("status") == "True" and t["status"].get("storesReady") == f"{stores}/{stores}")
        return t if ok else None
    return check


def _state(api: Api, name: str, store: str, state: str):
    return lambda: (e := _entries(api, name).get(store)) and e["state"] == state and e


def _exports(guests: GuestSimulator) -> Path:
    return guests.root / "_exports"


def _image(guests: GuestSimulator, store: str, ns: str, name: str) -> Path:
    export = export_dir(_exports(guests), f"10.0.0.5:/export/{store}")   # Api.store's URL, as mount.nfs names it
    return export / "template/tmpl" / ns / name / f"{name}.qcow2"


def test_templates_reach_every_store_resume_retry_fail_clearly_and_leave_with_their_files(tapi, template_cluster, source, caplog):
    caplog.set_level(logging.INFO)
    _, guests = template_cluster
    _zone(tapi, "z1")
    _zone(tapi, "z2")
    tapi.store("s1", "z1")
    tapi.store("s2", "z1")
    tapi.store("s3", "z2")
    small = qcow2_image(300_000)
    dropped = qcow2_image(2_000_000)
    stalled = qcow2_image(600_000)
    with OperatorThread(tapi.ns, None, scan_interval=3.0, template_settings=SETTINGS):
        wait_for("3 SSVMs Running, Ready and healthy", ready_ssvms(tapi, 3), timeout=120)
        _template(tapi, "small", source.add("/small.qcow2", small), ["z1"], checksum=sha256(small), extractable=True)
        _template(tapi, "dropped", source.add("/dropped.qcow2", dropped, Behaviour(rate=1_000_000, drop_after=700_000)),
                  ["z1"], checksum=sha256(dropped))
        _template(tapi, "stalled", source.add("/stalled.qcow2", stalled, Behaviour(stall_after=200_000, stall_seconds=30)),
                  ["z1"], checksum=sha256(stalled))
        _template(tapi, "wrong", source.add("/wrong.qcow2", small), ["z1"], checksum="sha256:" + "0" * 64)
        _template(tapi, "missing", source.url("/nothing-here.qcow2"), ["z1"])
        _template(tapi, "internal", f"http://127.0.0.2:{source.port}/small.qcow2", ["z1"])

        t = wait_for("the small template Ready on both stores of z1", _ready(tapi, "small", 2), timeout=60)
        assert t["status"]["progress"] == "100%" and t["status"]["size"] == len(small)
        for store in ("s1", "s2"):
            assert _image(guests, store, tapi.ns, "small").read_bytes() == small
            props = (_image(guests, store, tapi.ns, "small").parent / "template.properties").read_text()
            assert f"checksum={sha256(small)}" in props and f"uniquename={tapi.ns}/small" in props

        # The extractable template's signed link works, a tampered one does not, and it stops working once expired.
        link = wait_for("a download link", lambda: ((tapi.get(c.TEMPLATE_PLURAL, "small") or {}).get("status") or {}).get("downloadLinks"),
                        timeout=30)[0]
        assert _fetch(link["url"]) == (200, small)
        assert _fetch(link["url"][:-1] + ("0" if link["url"][-1] != "0" else "1"))[0] == 403, "a tampered link is refused"
        assert "ssvm-template-links" in {s.metadata.name for s in tapi.core.list_namespaced_secret(tapi.ns).items}
        wait_for("the first link expired", lambda: _fetch(link["url"])[0] == 403, timeout=30)
        renewed = wait_for("a renewed link", lambda: next((l for l in tapi.get(c.TEMPLATE_PLURAL, "small")["status"]["downloadLinks"]
                                                          if l["url"] != link["url"]), None), timeout=30)
        assert _fetch(renewed["url"]) == (200, small)

        wait_for("the dropped download Ready", _ready(tapi, "dropped", 2), timeout=60)
        resumed = [r.range for r in source.seen("/dropped.qcow2")]
        assert "bytes=700000-" in resumed, f"the dropped connection was resumed, not restarted: {resumed}"

        t = wait_for("the stalled download Ready", _ready(tapi, "stalled", 2), timeout=60)
        assert max(e["attempts"] for e in t["status"]["stores"]) == 2, "the stalled attempt was aborted and retried"
        assert "bytes=200000-" in [r.range for r in source.seen("/stalled.qcow2")], "and resumed where it stalled"

        for name, reason in (("wrong", "ChecksumMismatch"), ("missing", "NotFound"), ("internal", "InternalAddressRefused")):
            t = wait_for(f"{name}: Error {reason}", lambda name=name: (
                t := tapi.get(c.TEMPLATE_PLURAL, name)) and condition(t, "Ready").get("reason") == reason and t, timeout=60)
            assert all(e["state"] == "Error" and e["reason"] == reason for e in t["status"]["stores"]), t["status"]["stores"]
            assert "s1" in condition(t, "Ready")["message"], "the message names the failing stores"
        assert not any("wrong" in p.parts and p.is_file() for p in _exports(guests).rglob("*")), "a wrong checksum leaves no file"

        # A store added later gets the template; an image removed from a store, or damaged in place (same size,
        # another checksum), comes back at the next look.
        tapi.store("s4", "z1")
        wait_for("small on the new store too", _ready(tapi, "small", 3), timeout=60)
        _image(guests, "s2", tapi.ns, "small").unlink()
        damaged = _image(guests, "s4", tapi.ns, "small")
        damaged.write_bytes(small[:-1] + bytes([small[-1] ^ 0xFF]))
        wait_for("the removed and the damaged image downloaded again", lambda: _image(guests, "s2", tapi.ns, "small").exists()
                 and damaged.read_bytes() == small and _ready(tapi, "small", 3)(), timeout=60)

        # The source is gone: z2's store gets the copy from a z1 store through a z1 SSVM's copy server.
        source.files.pop("/small.qcow2")
        tapi.patch(c.TEMPLATE_PLURAL, "small", {"spec": {"zones": ["z1", "z2"]}})
        entry = wait_for("small on z2's store, copied from a peer", _state(tapi, "small", "s3", "Ready"), timeout=90)
        assert entry["source"].startswith("store:s"), entry
        assert _image(guests, "s3", tapi.ns, "small").read_bytes() == small

        # Deleting a template removes its files from every store before it goes.
        tapi.delete(c.TEMPLATE_PLURAL, "small")
        wait_for("the small template gone", lambda: tapi.get(c.TEMPLATE_PLURAL, "small") is None, timeout=60)
        assert not any(p.name == "small" for p in _exports(guests).rglob("*")), "no file of it is left"

        # No SSVM can reach z1's stores (the zone is disabled): a deletion waits, saying why, and ends once one can.
        tapi.patch(c.ZONE_PLURAL, "z1", {"spec": {"secondaryStorage": {"enabled": False}}})
        wait_for("z1's SSVMs stopped", lambda: all(s["status"].get("state") == "Stopped" for s in tapi.ssvms().values()
                                                    if s["spec"]["zoneRef"] == "z1"), timeout=60)
        tapi.delete(c.TEMPLATE_PLURAL, "dropped")
        held = wait_for("the deletion held", lambda: (t := tapi.get(c.TEMPLATE_PLURAL, "dropped")) and condition(
            t, "Ready").get("reason") == "RemovalBlocked" and t, timeout=60)
        assert "s1" in condition(held, "Ready")["message"] and _image(guests, "s1", tapi.ns, "dropped").exists()
        tapi.patch(c.ZONE_PLURAL, "z1", {"spec": {"secondaryStorage": {"enabled": True}}})
        wait_for("the held template gone once z1's SSVMs run", lambda: tapi.get(c.TEMPLATE_PLURAL, "dropped") is None, timeout=90)
        assert not _image(guests, "s1", tapi.ns, "dropped").exists()

        # No secret (the link key, the copy passwords a peer copy logs in with) is in a Template's status or its Events.
        secrets = [base64.b64decode(v).decode() for s in tapi.core.list_namespaced_secret(tapi.ns).items
                   if s.metadata.name == "ssvm-template-links" or s.metadata.name.endswith("-ssvm-copy") for v in (s.data or {}).values()]
        assert len(secrets) >= 3
        shown = json.dumps([tapi.list(c.TEMPLATE_PLURAL), tapi.events()], default=str) + caplog.text
        assert not [s for s in secrets if s in shown or base64.b64encode(f"cloud:{s}".encode()).decode() in shown]

        reasons = {e["reason"] for e in tapi.events() if (e.get("involved_object") or {}).get("kind") == c.TEMPLATE_KIND}
        assert {"TemplateDownloadStarted", "TemplateDownloaded", "TemplateDownloadFailed", "TemplateMissing",
                "TemplateRemoved"} <= reasons, reasons


def test_a_bad_template_is_refused_at_apply_time(tapi):
    from kubernetes.client.exceptions import ApiException
    for spec, needle in (({"url": "ftp://x/y", "format": "QCOW2", "zones": ["z"]}, "http"),
                         ({"url": "http://h/y", "format": "QCOW2"}, "allZones"),
                         ({"url": "http://h/y", "format": "QCOW2", "zones": ["z"], "allZones": True}, "allZones"),
                         ({"url": "http://h/y", "format": "QCOW2", "zones": ["z"], "checksum": "sha256:abc"}, "checksum"),
                         ({"url": "http://u:p@h/y", "format": "QCOW2", "zones": ["z"]}, "credentials")):
        with pytest.raises(ApiException) as refused:
            tapi.create(c.TEMPLATE_PLURAL, c.TEMPLATE_KIND, "bad", spec)
        assert refused.value.status == 422 and needle in refused.value.body, (spec, refused.value.body)


def _fetch(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
