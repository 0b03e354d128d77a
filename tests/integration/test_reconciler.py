"""The reconciler on the dev cluster with the in-memory backend: scaling, lifecycle, requests, deletion."""
from __future__ import annotations

import pytest

from ssvm_operator import constants as c
from ssvm_operator.model.vm import VMPhase

from .harness import condition, states, wait_for

pytestmark = pytest.mark.integration


def running(api, n):
    def check():
        s = states(api)
        return s if len(s) == n and all(v == "Running" for v in s.values()) else None
    return check


def reasons(api, name):
    return [e["reason"] for e in api.events() if e["involved_object"]["name"] == name]


def test_two_stores_give_two_ssvms_and_a_third_store_a_third(api, memory, operator):
    api.zone("z1")
    api.store("s1", "z1")
    api.store("s2", "z1")
    wait_for("2 running SSVMs", running(api, 2))
    ssvms = api.ssvms()
    assert set(ssvms) == {"z1-ssvm-1", "z1-ssvm-2"}
    one = ssvms["z1-ssvm-1"]
    assert one["metadata"]["ownerReferences"][0]["kind"] == "Zone"
    assert one["metadata"]["labels"][c.LABEL_ZONE] == "z1" and one["spec"]["role"] == "templateProcessor"
    assert memory.phase(api.ns, "z1-ssvm-1") == VMPhase.RUNNING
    zone = wait_for("zone Ready", lambda: (z := api.get(c.ZONE_PLURAL, "z1")) and condition(z, "Ready").get("status") == "True" and z)
    assert (zone["status"]["desiredSSVMs"], zone["status"]["runningSSVMs"], zone["status"]["imageStores"]) == (2, 2, 2)
    wait_for("SSVMCreated on the zone, SSVMStarted on the SSVM", lambda: "SSVMStarted" in reasons(api, "z1-ssvm-1")
             and "SSVMCreated" in reasons(api, "z1"))
    assert "SSVMStarted" not in reasons(api, "z1") and "SSVMCreated" not in reasons(api, "z1-ssvm-1"), "each Event posted once"

    api.store("s3", "z1")
    wait_for("3 running SSVMs", running(api, 3))
    assert set(api.ssvms()) == {"z1-ssvm-1", "z1-ssvm-2", "z1-ssvm-3"}
    assert len(memory.vms) == 3


def test_stop_start_reboot_recreate(api, memory, operator):
    api.zone("z1")
    api.store("s1", "z1")
    api.store("s2", "z1")
    wait_for("2 running SSVMs", running(api, 2))

    api.patch(c.SSVM_PLURAL, "z1-ssvm-2", {"spec": {"desiredState": "Stopped"}})
    wait_for("z1-ssvm-2 stopped", lambda: states(api)["z1-ssvm-2"] == "Stopped")
    assert memory.phase(api.ns, "z1-ssvm-2") == VMPhase.STOPPED
    wait_for("SSVMStopped event", lambda: "SSVMStopped" in reasons(api, "z1-ssvm-2"))

    api.patch(c.SSVM_PLURAL, "z1-ssvm-2", {"spec": {"desiredState": "Running"}})
    wait_for("z1-ssvm-2 running again", lambda: states(api)["z1-ssvm-2"] == "Running")

    before = memory.vms[(api.ns, "z1-ssvm-1")].instance
    api.patch(c.SSVM_PLURAL, "z1-ssvm-1", {"spec": {"rebootRequest": "r1"}})
    wait_for("reboot acknowledged", lambda: (api.get(c.SSVM_PLURAL, "z1-ssvm-1")["status"].get("observedRebootRequest") == "r1"))
    assert memory.vms[(api.ns, "z1-ssvm-1")].instance == before + 1
    wait_for("SSVMRebooted event", lambda: "SSVMRebooted" in reasons(api, "z1-ssvm-1"))
    wait_for("running after reboot", lambda: states(api)["z1-ssvm-1"] == "Running")

    destroys = memory.calls["destroy"]
    api.patch(c.SSVM_PLURAL, "z1-ssvm-1", {"spec": {"recreateRequest": "c1"}})
    wait_for("recreate acknowledged", lambda: api.get(c.SSVM_PLURAL, "z1-ssvm-1")["status"].get("observedRecreateRequest") == "c1")
    assert memory.calls["destroy"] == destroys + 1
    wait_for("running after recreate", lambda: states(api)["z1-ssvm-1"] == "Running")
    # requests are acted on once: a quiet period repeats nothing
    calls = dict(memory.calls)
    wait_for("a safety scan", lambda: memory.calls["observe"] > calls["observe"] + 2, timeout=15)
    assert (memory.calls["reboot"], memory.calls["destroy"]) == (calls["reboot"], calls["destroy"])


def test_reboot_of_a_stopped_ssvm_starts_it(api, memory, operator):
    api.zone("z1")
    api.store("s1", "z1")
    api.store("s2", "z1")
    wait_for("2 running SSVMs", running(api, 2))
    api.patch(c.SSVM_PLURAL, "z1-ssvm-2", {"spec": {"desiredState": "Stopped"}})
    wait_for("stopped", lambda: states(api)["z1-ssvm-2"] == "Stopped")
    api.patch(c.SSVM_PLURAL, "z1-ssvm-2", {"spec": {"rebootRequest": "wake"}})
    ssvm = wait_for("running", lambda: (s := api.get(c.SSVM_PLURAL, "z1-ssvm-2"))["status"].get("state") == "Running" and s)
    assert ssvm["spec"]["desiredState"] == "Running" and ssvm["status"]["observedRebootRequest"] == "wake"


def test_deleted_ssvm_is_replaced_and_its_vm_destroyed(api, memory, operator):
    api.zone("z1")
    api.store("s1", "z1")
    api.store("s2", "z1")
    wait_for("2 running SSVMs", running(api, 2))
    old_uid = api.get(c.SSVM_PLURAL, "z1-ssvm-1")["metadata"]["uid"]
    destroys = memory.calls["destroy"]
    api.delete(c.SSVM_PLURAL, "z1-ssvm-1")

    def replaced():
        ssvms = api.ssvms()
        gone = "z1-ssvm-1" not in ssvms or ssvms["z1-ssvm-1"]["metadata"]["uid"] != old_uid
        return (gone and running(api, 2)() and ssvms) or None
    ssvms = wait_for("a replacement running beside z1-ssvm-2", replaced)
    assert "z1-ssvm-2" in ssvms and len(ssvms) == 2, "one replacement, nothing more"
    wait_for("the deleted SSVM's VM destroyed", lambda: memory.calls["destroy"] >= destroys + 1
             and {k[1] for k in memory.vms if k[0] == api.ns} == set(api.ssvms()))
    wait_for("SSVMDestroyed event", lambda: "SSVMDestroyed" in reasons(api, "z1-ssvm-1"))


def test_deleting_a_zone_destroys_its_ssvms_and_vms_first(api, memory, operator, caplog):
    api.zone("z1")
    api.store("s1", "z1")
    api.store("s2", "z1")
    wait_for("2 running SSVMs", running(api, 2))
    before = len(caplog.records)
    api.delete(c.ZONE_PLURAL, "z1")
    wait_for("zone gone", lambda: api.get(c.ZONE_PLURAL, "z1") is None)
    assert api.ssvms() == {}
    assert not [k for k in memory.vms if k[0] == api.ns]
    # a zone waiting for its SSVMs to go is the normal course of a deletion: nothing at ERROR
    errors = [r.getMessage() for r in caplog.records[before:] if r.levelname == "ERROR" and r.name.startswith(("kopf", "ssvm_operator"))]
    assert not errors, errors


def test_disabling_ssvms_stops_them_without_destroying(api, memory, operator):
    api.zone("z1")
    api.store("s1", "z1")
    api.store("s2", "z1")
    wait_for("2 running SSVMs", running(api, 2))
    api.patch(c.ZONE_PLURAL, "z1", {"spec": {"secondaryStorage": {"enabled": False}}})
    wait_for("all stopped", lambda: set(states(api).values()) == {"Stopped"})
    assert len(memory.vms) == 2 and all(memory.phase(*k) == VMPhase.STOPPED for k in memory.vms)
    zone = wait_for("zone ready as disabled", lambda: (z := api.get(c.ZONE_PLURAL, "z1")) and
                    condition(z, "Ready").get("reason") == "SecondaryStorageDisabled" and z)
    assert condition(zone, "SecondaryStorageEnabled")["status"] == "False"
    api.store("s3", "z1")
    # the zone's pass that counts the third store is the one that would create for it
    wait_for("the disabled zone counts 3 stores", lambda: (api.get(c.ZONE_PLURAL, "z1").get("status") or {}).get("imageStores") == 3)
    assert set(api.ssvms()) == {"z1-ssvm-1", "z1-ssvm-2"}, "a disabled zone gets no new SSVM"
    assert set(states(api).values()) == {"Stopped"} and len([k for k in memory.vms if k[0] == api.ns]) == 2
    api.patch(c.ZONE_PLURAL, "z1", {"spec": {"secondaryStorage": {"enabled": True}}})
    wait_for("3 running after enabling", running(api, 3))


def test_not_ready_zone_gets_nothing_and_says_why(api, memory, operator):
    api.create(c.ZONE_PLURAL, c.ZONE_KIND, "bare", {})
    api.store("s1", "bare")
    zone = wait_for("TemplateReady evaluated", lambda: (z := api.get(c.ZONE_PLURAL, "bare")) and
                    condition(z, "TemplateReady").get("reason") == "TemplateNotConfigured" and z)
    assert condition(zone, "Ready")["reason"] == "TemplateNotConfigured"
    assert condition(zone, "ImageStoreAvailable")["status"] == "True"
    assert api.ssvms() == {}


def test_backend_errors_become_conditions_and_events_then_recover(api, memory, operator):
    memory.inject_failure("ensure", name="z1-ssvm-1", reason="QuotaExceeded", message="no room for the VM", times=10_000)
    api.zone("z1")
    api.store("s1", "z1")
    wait_for("VMReady says QuotaExceeded", lambda: condition(api.get(c.SSVM_PLURAL, "z1-ssvm-1"), "VMReady").get("reason") == "QuotaExceeded")
    wait_for("SSVMCreateFailed event", lambda: "SSVMCreateFailed" in reasons(api, "z1-ssvm-1"))
    tries = memory.calls["ensure"]
    memory.clear_failures()
    wait_for("running after backoff", running(api, 1))
    assert len(api.ssvms()) == 1
    assert tries < 20, "retries back off instead of busy-looping"
    assert reasons(api, "z1-ssvm-1").count("SSVMCreateFailed") == 1, "one Warning per new reason, not one per retry"


def test_failed_restart_from_the_stopped_pool_is_destroyed_and_replaced(api, memory, operator):
    api.zone("z1")
    api.store("s1", "z1")
    wait_for("1 running", running(api, 1))
    memory.fail_boot("z1-ssvm-1", "ErrImagePull")
    api.patch(c.SSVM_PLURAL, "z1-ssvm-1", {"spec": {"desiredState": "Stopped"}})
    # minRunning 1: the zone takes it from the stopped pool, its start fails, it is recycled for a fresh one
    wait_for("fresh SSVM running", lambda: states(api) == {"z1-ssvm-2": "Running"})
    assert set(k[1] for k in memory.vms if k[0] == api.ns) == {"z1-ssvm-2"}


def test_a_users_ssvm_on_a_slot_name_of_another_zone_does_not_block_it(api, memory, operator):
    api.create(c.SSVM_PLURAL, c.SSVM_KIND, "z1-ssvm-1", {"zoneRef": "elsewhere", "desiredState": "Stopped"})
    api.zone("z1")
    api.store("s1", "z1")
    api.store("s2", "z1")
    zone = wait_for("zone z1 Ready with its own 2 SSVMs", lambda: (z := api.get(c.ZONE_PLURAL, "z1")) and
                    condition(z, "Ready").get("status") == "True" and z, timeout=45)
    mine = {n for n, s in api.ssvms().items() if s["spec"]["zoneRef"] == "z1"}
    assert mine == {"z1-ssvm-2", "z1-ssvm-3"} and zone["status"]["runningSSVMs"] == 2
    assert api.get(c.SSVM_PLURAL, "z1-ssvm-1")["spec"]["zoneRef"] == "elsewhere", "the user's SSVM is left alone"


def test_min_running_two_then_a_second_store_keeps_two_ssvms(api, memory, operator):
    api.zone("z1", minRunning=2)
    api.store("s1", "z1")
    wait_for("2 running SSVMs for minRunning", running(api, 2))
    api.store("s2", "z1")
    wait_for("the zone counts 2 stores", lambda: (api.get(c.ZONE_PLURAL, "z1").get("status") or {}).get("imageStores") == 2)
    zone = wait_for("zone Ready", lambda: (z := api.get(c.ZONE_PLURAL, "z1")) and condition(z, "Ready").get("status") == "True" and z)
    assert zone["status"]["desiredSSVMs"] == 2 and len(api.ssvms()) == 2, api.ssvms().keys()
    assert {s["spec"]["role"] for s in api.ssvms().values()} == {"templateProcessor"}


def test_an_orphaned_ssvm_says_its_zone_is_missing(api, memory, operator):
    api.create(c.SSVM_PLURAL, c.SSVM_KIND, "orphan", {"zoneRef": "nowhere"})
    ssvm = wait_for("the orphan evaluated", lambda: (s := api.get(c.SSVM_PLURAL, "orphan")) and
                    condition(s, "Ready").get("reason") == "ZoneNotFound" and s)
    assert (condition(ssvm, "VMReady")["status"], condition(ssvm, "VMReady")["reason"]) == ("Unknown", "ZoneNotFound")
