"""An SSVM's event wakes its lifecycle and its zone only when something each reads changed."""
from __future__ import annotations

from ssvm_operator.controllers.ssvm.controller import lifecycle_inputs, zone_inputs


def ssvm() -> dict:
    return {"metadata": {"name": "z1-ssvm-1", "generation": 1, "resourceVersion": "10", "labels": {}},
            "spec": {"zoneRef": "z1"},
            "status": {"state": "Running", "health": {"lastCheckTime": "t0", "activeSessions": 0},
                       "actions": {"firewall": {"desiredHash": "a"}},
                       "conditions": [{"type": "Healthy", "status": "True"}, {"type": "Ready", "status": "True"}]}}


def changed(edit) -> dict:
    body = ssvm()
    edit(body)
    return body


def test_the_health_heartbeat_and_action_records_wake_neither():
    echo = changed(lambda b: (b["status"]["health"].update(lastCheckTime="t1"), b["metadata"].update(resourceVersion="11"),
                              b["status"]["actions"]["firewall"].update(desiredHash="b")))
    assert zone_inputs("ns", echo) == zone_inputs("ns", ssvm())
    assert lifecycle_inputs(echo) == lifecycle_inputs(ssvm())


def test_what_each_reads_wakes_it():
    guest_condition = changed(lambda b: b["status"]["conditions"][0].update(status="False"))
    assert lifecycle_inputs(guest_condition) != lifecycle_inputs(ssvm()), "Ready is computed from the guest's conditions"
    assert zone_inputs("ns", guest_condition) == zone_inputs("ns", ssvm()), "the zone reads Ready, not Healthy"
    for edit in (lambda b: b["status"]["health"].update(activeSessions=3),       # the capacity planner's load
                 lambda b: b["status"]["conditions"][1].update(status="False"),
                 lambda b: b["status"].update(state="Stopping"),
                 lambda b: b["metadata"].update(deletionTimestamp="t")):
        assert zone_inputs("ns", changed(edit)) != zone_inputs("ns", ssvm())
    for edit in (lambda b: b["spec"].update(desiredState="Stopped"), lambda b: b["status"].update(state="Stopping")):
        assert lifecycle_inputs(changed(edit)) != lifecycle_inputs(ssvm())


def test_a_new_zone_reference_is_news_to_the_zone():
    assert zone_inputs("ns", changed(lambda b: b["spec"].update(zoneRef="z2"))) != zone_inputs("ns", ssvm())
