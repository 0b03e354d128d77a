"""The external backend end to end on the dev cluster: hosts the operator does not create (simulated guests
on loopback, their host keys pinned in the zone), SSVMs mapped onto them, guest actions, capacity, stop."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from ssvm_operator import constants as c

from .harness import Api, OperatorThread, condition, operator_key_secret, ready_ssvms, start_external_hosts, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture()
def hosts(api, tmp_path):
    """Two simulated hosts trusting an operator key put in the namespace's operator key Secret beforehand."""
    guests, specs = start_external_hosts(operator_key_secret(api).public_openssh, tmp_path, "127.91")
    yield guests, specs
    for guest in guests:
        guest.stop()




def test_external_zone_runs_ssvms_on_its_hosts(api, hosts):
    guests, specs = hosts
    api.create(c.ZONE_PLURAL, c.ZONE_KIND, "z1", {"secondaryStorage": {
        "backend": "external", "template": {"external": {"hosts": specs}},
        "health": {"intervalSeconds": 5, "failureThreshold": 3}}})
    api.store("s1", "z1")
    api.store("s2", "z1")
    with OperatorThread(api.ns, None, scan_interval=3.0):
        ssvms = wait_for("2 SSVMs Running, Ready and healthy on the external hosts", ready_ssvms(api, 2), timeout=90)
        by_host = {s["status"]["backendRef"]["name"]: s for s in ssvms.values()}
        assert sorted(by_host) == ["host-0", "host-1"]
        for spec, guest in zip(specs, guests):
            st = by_host[spec["name"]]["status"]
            assert st["backendRef"]["backend"] == "external"
            assert st["nics"]["control"]["ip"] == spec["address"] == st["nics"]["public"]["ip"]
            for key in ("setupStore", "firewall", "vmSetup"):
                assert st["actions"][key]["result"] == "Succeeded", (key, st["actions"][key])
            other = next(s["address"] for s in specs if s is not spec)
            allow = json.loads((guest.state_dir / "etc/ssvm-agent/copy-server.json").read_text())["allow"]
            assert allow == [other]   # the mesh: each host admits the other
        # no per-SSVM host key Secret: the zone's pinned hostKey is used
        secrets = {s.metadata.name for s in api.core.list_namespaced_secret(api.ns).items}
        assert not any(n.endswith("-ssh-hostkey") for n in secrets), secrets

        # A third store asks for a third SSVM: only two hosts, so the zone says so and creates none.
        api.store("s3", "z1")
        zone = wait_for("the zone reporting no free external host", lambda: (
            z := api.get(c.ZONE_PLURAL, "z1")) and condition(z, "Ready").get("reason") == "NoFreeExternalHost" and z, timeout=60)
        assert "no free external host" in condition(zone, "Ready")["message"]
        assert len(api.ssvms()) == 2

        # desiredState Stopped stops the host's service.
        name = by_host["host-0"]["metadata"]["name"]
        api.patch(c.SSVM_PLURAL, name, {"spec": {"desiredState": "Stopped"}})
        wait_for("the SSVM Stopped", lambda: (api.ssvms().get(name) or {}).get("status", {}).get("state") == "Stopped", timeout=60)
        service = json.loads((guests[0].state_dir / "var/lib/ssvm-agent/service.json").read_text())
        assert service["running"] is False
