"""Reading a VirtualMachine and its instance into an ObservedVM, and backend readiness from discovery (pure)."""
from __future__ import annotations

import pytest

from ssvm_operator.model.vm import VMPhase
from ssvm_operator.backends.kubevirt.observe import FAILURE_STATES, observe_objects


def _vm(printable=None, run_strategy="Always", conditions=(), **meta):
    status = {"conditions": list(conditions)}
    if printable:
        status["printableStatus"] = printable
    return {"metadata": {"name": "s-1", "uid": "vm-uid", **meta}, "spec": {"runStrategy": run_strategy}, "status": status}


def _vmi(phase="Running", interfaces=None):
    return {"metadata": {"name": "s-1", "uid": "vmi-uid"},
            "status": {"phase": phase, "interfaces": interfaces if interfaces is not None else [
                {"name": "control", "ipAddress": "127.77.0.2", "mac": "02:00:00:00:00:01"},
                {"name": "management", "ipAddresses": ["fe80::1", "10.1.0.5/24"], "mac": "02:00:00:00:00:02"},
                {"name": "public", "ipAddress": "203.0.113.9", "mac": "02:00:00:00:00:03"},
            ]}}


def test_absent():
    assert observe_objects(None, None).phase is VMPhase.ABSENT


def test_running_with_addresses_per_traffic_type():
    seen = observe_objects(_vm("Running"), _vmi())
    assert seen.phase is VMPhase.RUNNING and seen.instance_id == "vmi-uid"
    assert seen.control_ip == "127.77.0.2"
    assert seen.nics["private"].ip == "10.1.0.5"  # IPv4 from ipAddresses, prefix dropped
    assert seen.nics["public"].ip == "203.0.113.9"
    assert seen.nics["storage"] == seen.nics["private"]  # no storage network: storage rides management


def test_pod_only_vm_uses_the_control_nic_for_everything():
    seen = observe_objects(_vm("Running"), _vmi(interfaces=[{"name": "control", "ipAddress": "127.77.0.3"}]))
    assert {k: v.ip for k, v in seen.nics.items()} == {t: "127.77.0.3" for t in ("control", "public", "private", "storage")}


def test_vm_running_before_its_instance_is_starting():
    assert observe_objects(_vm("Running"), _vmi(phase="Scheduled")).phase is VMPhase.STARTING
    assert observe_objects(_vm("Running"), None).phase is VMPhase.STARTING


@pytest.mark.parametrize("printable, phase", [("Provisioning", VMPhase.PROVISIONING), ("Starting", VMPhase.STARTING),
                                              ("Stopping", VMPhase.STOPPING), ("Stopped", VMPhase.STOPPED),
                                              ("Migrating", VMPhase.MIGRATING)])
def test_printable_status_maps_to_phase(printable, phase):
    assert observe_objects(_vm(printable), None).phase is phase


@pytest.mark.parametrize("state", FAILURE_STATES)
def test_failure_states(state):
    seen = observe_objects(_vm(state, conditions=[{"type": "Failure", "status": "True", "reason": state, "message": "boom"}]), None)
    assert (seen.phase, seen.reason, seen.message) == (VMPhase.FAILED, state, "boom")


def test_failure_condition_and_failed_instance():
    cond = {"type": "Failure", "status": "True", "reason": "FailedCreate", "message": "quota"}
    assert observe_objects(_vm("Starting", conditions=[cond]), None).reason == "FailedCreate"
    failed = observe_objects(_vm(), _vmi(phase="Failed"))
    assert failed.phase is VMPhase.FAILED


def test_no_status_yet_follows_run_strategy_and_deletion():
    assert observe_objects(_vm(run_strategy="Halted"), None).phase is VMPhase.STOPPED
    assert observe_objects(_vm(), None).phase is VMPhase.PROVISIONING
    assert observe_objects(_vm("Running", deletionTimestamp="2026-01-01T00:00:00Z"), _vmi()).phase is VMPhase.STOPPING


@pytest.mark.parametrize("served, zone_change, expected", [
    ({"kubevirt.io": ["v1"], "k8s.cni.cncf.io": ["v1"]}, None, (True, True, "KubeVirtReady")),
    ({}, None, (False, True, "KubeVirtNotInstalled")),
    ({"kubevirt.io": ["v1"]}, None, (False, True, "MultusNotInstalled")),
    ({"kubevirt.io": ["v1"]}, {"networks": {}}, (True, True, "KubeVirtReady")),
    ({"kubevirt.io": ["v1"], "k8s.cni.cncf.io": ["v1"]}, {"template": None}, (True, False, "TemplateMissing")),
    ({"kubevirt.io": ["v1"], "k8s.cni.cncf.io": ["v1"]}, {"offering": {"rootDisk": "shared"}}, (True, False, "CDINotInstalled")),
])
def test_readiness_from_discovery(served, zone_change, expected):
    from ssvm_operator.backends.kubevirt.backend import readiness_from_discovery
    from tests.kubevirt.helpers import admitted_zone_spec, example

    zone = example("Zone", "zone1")
    for key, value in (zone_change or {}).items():
        if key == "networks":
            zone["spec"]["networks"] = value
        elif value is None:
            zone["spec"]["secondaryStorage"].pop(key)
        else:
            zone["spec"]["secondaryStorage"][key] = value
    answer = readiness_from_discovery(served, "zone1", admitted_zone_spec(zone))
    assert (answer.can_run_vms, answer.template_ready, answer.reason) == expected


def test_spec_hash_and_restart_required():
    seen = observe_objects(_vm("Running", annotations={"ssvm.io/spec-hash": "aa.bb"},
                               conditions=[{"type": "RestartRequired", "status": "True"}]), _vmi())
    assert (seen.spec_hash, seen.restart_required) == ("aa.bb", True)
    plain = observe_objects(_vm("Running"), _vmi())
    assert (plain.spec_hash, plain.restart_required) == (None, False)
