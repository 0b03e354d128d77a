"""The rolling update on the dev cluster with the in-memory backend: a zone's new template replaces its
SSVMs' VMs one at a time, never more than one of the zone down at once."""
from __future__ import annotations

import time

import pytest
from ssvm_operator import constants as c
from ssvm_operator.model.vm import VMPhase
from ssvm_operator.model.spec_hash import material_hash

from .harness import condition, wait_for

pytestmark = pytest.mark.integration
NEW_IMAGE = "registry.example/systemvm:4.20"


def _all_ready(api, n):
    ssvms = api.ssvms()
    return len(ssvms) == n and all(condition(s, "Ready").get("status") == "True" for s in ssvms.values())


def _reasons(api, name):
    return [e["reason"] for e in api.events() if e["involved_object"]["name"] == name]


def test_new_template_replaces_ssvms_one_at_a_time(api, memory, operator):
    api.zone("z1")
    for store in ("s1", "s2", "s3"):
        api.store(store, "z1")
    wait_for("3 Ready SSVMs", lambda: _all_ready(api, 3))
    wait_for("all UpToDate", lambda: all(condition(s, "UpToDate").get("status") == "True" for s in api.ssvms().values()))
    old = {k[1]: vm.spec_hash for k, vm in memory.vms.items()}
    destroys = memory.calls["destroy"]

    api.patch(c.ZONE_PLURAL, "z1", {"spec": {"secondaryStorage": {"template": {"kubevirt": {"containerDiskImage": NEW_IMAGE}}}}})
    want = material_hash(api.get(c.ZONE_PLURAL, "z1")["spec"], {})
    assert want not in old.values()

    most_down_vms = most_not_ready = 0
    seen_rolling = False
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        # VMs straight from the backend: not running, or gone, means not serving
        down = sum(1 for name in ("z1-ssvm-1", "z1-ssvm-2", "z1-ssvm-3") if memory.phase(api.ns, name) != VMPhase.RUNNING)
        most_down_vms = max(most_down_vms, down)
        ssvms = api.ssvms()
        most_not_ready = max(most_not_ready, sum(1 for s in ssvms.values() if condition(s, "Ready").get("status") != "True"))
        zone = api.get(c.ZONE_PLURAL, "z1")
        seen_rolling = seen_rolling or condition(zone, "SSVMsUpToDate").get("reason") == "RollingUpdate"
        if (len(memory.vms) == 3 and all(vm.spec_hash == want for vm in memory.vms.values()) and down == 0
                and _all_ready(api, 3) and condition(zone, "SSVMsUpToDate").get("status") == "True"
                and not any(c.GROUP + "/upgrading" in (s["metadata"].get("annotations") or {}) for s in ssvms.values())):
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"rolling update did not finish: {[(k, vm.spec_hash) for k, vm in memory.vms.items()]}, want {want}")

    assert most_down_vms == 1, f"{most_down_vms} VMs of the zone were down at once"
    assert most_not_ready == 1, f"{most_not_ready} SSVMs of the zone were not Ready at once"
    assert seen_rolling
    assert memory.calls["destroy"] == destroys + 3   # each VM recreated exactly once
    ssvms = api.ssvms()
    assert all(condition(s, "UpToDate").get("reason") == "UpToDate" for s in ssvms.values())
    assert all(s["spec"]["recreateRequest"] == f"upgrade-{want}" == s["status"]["observedRecreateRequest"] for s in ssvms.values())
    for name in ssvms:
        wait_for(f"upgrade events of {name}", lambda n=name: {"SSVMUpgrading", "SSVMUpgraded"} <= set(_reasons(api, n)))
    # a quiet period replaces nothing more
    calls = dict(memory.calls)
    wait_for("a safety scan", lambda: memory.calls["observe"] > calls["observe"] + 3, timeout=15)
    assert memory.calls["destroy"] == calls["destroy"]


def test_offering_override_on_one_ssvm_replaces_only_it(api, memory, operator):
    api.zone("z1")
    api.store("s1", "z1")
    api.store("s2", "z1")
    wait_for("2 Ready SSVMs", lambda: _all_ready(api, 2))
    before = {k[1]: vm.instance for k, vm in memory.vms.items()}
    api.patch(c.SSVM_PLURAL, "z1-ssvm-2", {"spec": {"offering": {"memoryMiB": 1024}}})
    wait_for("z1-ssvm-2 replaced and Ready", lambda: (s := api.ssvms()["z1-ssvm-2"])["status"].get("observedRecreateRequest")
             and condition(s, "Ready").get("status") == "True" and condition(s, "UpToDate").get("status") == "True")
    wait_for("zone up to date", lambda: condition(api.get(c.ZONE_PLURAL, "z1"), "SSVMsUpToDate").get("status") == "True")
    assert memory.vms[(api.ns, "z1-ssvm-1")].instance == before["z1-ssvm-1"]
    assert "recreateRequest" not in api.ssvms()["z1-ssvm-1"]["spec"]
