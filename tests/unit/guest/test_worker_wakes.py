"""A guest worker is woken by what it acts on, not by the echo of its own status write."""
from __future__ import annotations

import copy

from ssvm_operator.controllers.guest.worker import worker_inputs


def ssvm() -> dict:
    return {"metadata": {"name": "z1-ssvm-1", "generation": 1, "resourceVersion": "10"},
            "spec": {"zoneRef": "z1"},
            "status": {"state": "Running", "nics": {"public": {"ip": "203.0.113.5"}},
                       "actions": {"firewall": {"desiredHash": "a"}}, "conditions": [{"type": "Healthy", "status": "True"}]}}


def test_its_own_writes_are_no_news_and_everything_else_is():
    before = ssvm()
    echo = copy.deepcopy(before)
    echo["metadata"]["resourceVersion"] = "11"
    echo["status"]["actions"]["firewall"]["desiredHash"] = "b"
    echo["status"]["health"] = {"lastCheckTime": "2026-12-01T00:00:00Z"}
    echo["status"]["conditions"][0]["status"] = "False"
    echo["status"]["observedCheckRequest"] = "t1"
    assert worker_inputs(echo) == worker_inputs(before)
    for change in (lambda b: b["status"].update(state="Stopping"),
                   lambda b: b["status"]["nics"]["public"].update(ip="203.0.113.6"),
                   lambda b: b["spec"].update(checkRequest="t2"),
                   lambda b: b["metadata"].update(generation=2),
                   lambda b: b["metadata"].update(deletionTimestamp="2026-12-01T00:00:00Z")):
        changed = copy.deepcopy(before)
        change(changed)
        assert worker_inputs(changed) != worker_inputs(before)
