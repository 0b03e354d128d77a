"""SSVM lifecycle plans and status: requests, desired state, the start gate, no churn."""
from __future__ import annotations

import pytest

from ssvm_operator.model.vm import NicInfo, ObservedVM, VMPhase
from ssvm_operator.controllers.ssvm.lifecycle import (GateResult, SSVMRequest, VMAction, map_vm_state, plan_ssvm_lifecycle, ssvm_status_patch,
                                          transition_events)

P = VMPhase
OPEN = GateResult(True)
SHUT = GateResult(False, "WaitingForSSH", "SSH on 3922 does not answer yet.")


def req(**kw) -> SSVMRequest:
    return SSVMRequest(name="z1-ssvm-1", generation=1, **kw)


def obs(phase: VMPhase, **kw) -> ObservedVM:
    return ObservedVM(phase=phase, backend_name="z1-ssvm-1", **kw)


def kinds(plan) -> list[tuple[str, bool | None]]:
    return [(a.kind, a.running) for a in plan.actions]


CASES = [
    # title, request, phase, zone enabled, expected actions
    ("absent VM is created running", req(), P.ABSENT, True, [("ensure", True)]),
    ("absent VM of a stopped SSVM is created stopped", req(desired_state="Stopped"), P.ABSENT, True, [("ensure", False)]),
    ("absent VM in a disabled zone is created stopped", req(), P.ABSENT, False, [("ensure", False)]),
    ("stopped VM desired running is started", req(), P.STOPPED, True, [("start", None)]),
    ("running VM desired running: nothing", req(), P.RUNNING, True, []),
    ("booting VM: wait", req(), P.STARTING, True, []),
    ("stopping VM desired running: wait, then start", req(), P.STOPPING, True, []),
    ("running VM desired stopped is stopped", req(desired_state="Stopped"), P.RUNNING, True, [("stop", None)]),
    ("disabled zone stops running VMs, never destroys", req(), P.RUNNING, False, [("stop", None)]),
    ("disabled zone leaves stopped VMs", req(), P.STOPPED, False, []),
    ("failed VM with HA is restarted", req(), P.FAILED, True, [("start", None)]),
    ("failed VM without HA stays failed", req(ha=False), P.FAILED, True, []),
    ("failed pool restart is left for the zone to recycle", req(pool_restart=True), P.FAILED, True, []),
    ("migrating: wait", req(), P.MIGRATING, True, []),
]


@pytest.mark.parametrize("title,r,phase,enabled,expected", CASES, ids=[c[0] for c in CASES])
def test_actions(title, r, phase, enabled, expected):
    plan = plan_ssvm_lifecycle(r, obs(phase), zone_found=True, zone_enabled=enabled)
    assert kinds(plan) == expected
    assert plan.ack_reboot is None and plan.ack_recreate is None


def test_unknown_observation_or_missing_zone_or_deleting_does_nothing():
    assert not plan_ssvm_lifecycle(req(), None, zone_found=True, zone_enabled=True).actions
    assert not plan_ssvm_lifecycle(req(), obs(P.ABSENT), zone_found=False, zone_enabled=True).actions
    assert not plan_ssvm_lifecycle(req(deleting=True), obs(P.RUNNING), zone_found=True, zone_enabled=True).actions


def test_reboot_of_running_vm_reboots_and_acknowledges():
    plan = plan_ssvm_lifecycle(req(reboot_request="r1"), obs(P.RUNNING), zone_found=True, zone_enabled=True)
    assert kinds(plan) == [("reboot", None)]
    assert plan.ack_reboot == "r1"
    assert [e.reason for e in plan.events] == ["SSVMRebooted"]


def test_acknowledged_reboot_is_not_repeated():
    plan = plan_ssvm_lifecycle(req(reboot_request="r1", observed_reboot="r1"), obs(P.RUNNING), zone_found=True, zone_enabled=True)
    assert not plan.actions and plan.ack_reboot is None


def test_reboot_of_stopped_ssvm_starts_it_as_cloudstack_does():
    plan = plan_ssvm_lifecycle(req(reboot_request="r2", desired_state="Stopped"), obs(P.STOPPED), zone_found=True, zone_enabled=True)
    assert kinds(plan) == [("start", None)]
    assert plan.set_desired_state == "Running" and plan.ack_reboot == "r2"


def test_reboot_in_disabled_zone_is_acknowledged_and_ignored():
    plan = plan_ssvm_lifecycle(req(reboot_request="r3"), obs(P.STOPPED), zone_found=True, zone_enabled=False)
    assert not plan.actions and plan.ack_reboot == "r3"
    assert plan.events[0].type == "Warning"


def test_recreate_destroys_then_ensures_and_acknowledges_both_requests():
    plan = plan_ssvm_lifecycle(req(recreate_request="c1", reboot_request="r1"), obs(P.RUNNING), zone_found=True, zone_enabled=True)
    assert kinds(plan) == [("destroy", None), ("ensure", True)]
    assert (plan.ack_recreate, plan.ack_reboot) == ("c1", "r1")
    assert [e.reason for e in plan.events] == ["SSVMDestroyed", "SSVMCreated"]


STATES = [
    (P.ABSENT, OPEN, "Creating"), (P.PROVISIONING, OPEN, "Creating"), (P.STARTING, OPEN, "Starting"),
    (P.RUNNING, OPEN, "Running"), (P.RUNNING, SHUT, "Starting"), (P.STOPPING, OPEN, "Stopping"),
    (P.STOPPED, OPEN, "Stopped"), (P.MIGRATING, OPEN, "Migrating"), (P.FAILED, OPEN, "Error"),
]


@pytest.mark.parametrize("phase,gate,state", STATES)
def test_state_mapping(phase, gate, state):
    assert map_vm_state(phase, gate) == state


def _status(r, o, gate=OPEN, enabled=True, **kw):
    plan = plan_ssvm_lifecycle(r, o, zone_found=True, zone_enabled=enabled)
    return ssvm_status_patch(kw.pop("status", None), r, o, gate, plan=plan, zone_found=True, backend_kind="kubevirt",
                             now="2025-01-01T00:00:00Z", **kw)


def test_status_of_running_ssvm_and_no_churn_on_second_pass():
    o = obs(P.RUNNING, nics={"public": NicInfo("1.2.3.4", "02:00:00:00:00:01", "pub")}, api_version="kubevirt.io/v1",
            kind="VirtualMachine")
    first = _status(req(), o)
    assert first["state"] == "Running"
    assert first["nics"] == {"public": {"ip": "1.2.3.4", "mac": "02:00:00:00:00:01", "network": "pub"}}
    assert first["backendRef"] == {"backend": "kubevirt", "name": "z1-ssvm-1", "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine"}
    conds = {c["type"]: c for c in first["conditions"]}
    assert (conds["VMReady"]["status"], conds["Ready"]["status"], conds["Ready"]["reason"]) == ("True", "True", "Running")
    later = {k: v for k, v in first.items()}
    assert ssvm_status_patch(later, req(), o, OPEN, plan=plan_ssvm_lifecycle(req(), o, zone_found=True, zone_enabled=True),
                             zone_found=True, backend_kind="kubevirt", now="2030-01-01T00:00:00Z") == {}


def test_gate_holds_running():
    patch = _status(req(), obs(P.RUNNING), gate=SHUT)
    conds = {c["type"]: c for c in patch["conditions"]}
    assert patch["state"] == "Starting"
    assert (conds["VMReady"]["status"], conds["Ready"]["reason"]) == ("True", "WaitingForSSH")


def test_backend_error_becomes_a_condition_and_pool_restart_failure_an_error_state():
    patch = _status(req(), obs(P.STOPPED), error=("QuotaExceeded", "no room"))
    conds = {c["type"]: c for c in patch["conditions"]}
    assert patch["state"] == "Stopped" and conds["VMReady"]["reason"] == "QuotaExceeded"
    assert _status(req(pool_restart=True), obs(P.STOPPED), error=("QuotaExceeded", "no room"))["state"] == "Error"


def test_acks_are_written():
    patch = _status(req(reboot_request="r1"), obs(P.RUNNING))
    assert patch["observedRebootRequest"] == "r1"


def test_stopped_as_desired_is_not_ready_with_reason_stopped():
    patch = _status(req(desired_state="Stopped"), obs(P.STOPPED))
    conds = {c["type"]: c for c in patch["conditions"]}
    assert conds["Ready"]["reason"] == "Stopped"


def test_from_body_reads_spec_status_and_zone_offering():
    body = {"metadata": {"name": "a", "generation": 3, "annotations": {"ssvm.io/restarted-from-pool": "x"}},
            "spec": {"desiredState": "Stopped", "rebootRequest": "t"}, "status": {"state": "Stopped", "observedRebootRequest": "s"}}
    r = SSVMRequest.from_body(body, {"secondaryStorage": {"offering": {"ha": False}}})
    assert (r.desired_state, r.reboot_pending, r.pool_restart, r.ha, r.generation) == ("Stopped", True, True, False, 3)


def test_transition_events():
    assert [e.reason for e in transition_events("a", "Starting", "Running")] == ["SSVMStarted"]
    assert [e.reason for e in transition_events("a", "Stopping", "Stopped")] == ["SSVMStopped"]
    assert transition_events("a", None, "Stopped") == ()
    assert transition_events("a", "Running", "Running") == ()
    assert isinstance(VMAction("start"), VMAction)
