"""Conditions: lastTransitionTime moves only when status does; initial conditions never overwrite."""
from __future__ import annotations

from ssvm_operator.api import ImageStore, SecondaryStorageVM, Zone
from ssvm_operator.model.conditions import find_condition, initial_conditions, set_condition
from ssvm_operator.model.initial_status import initial_status_patch

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def test_transition_time_kept_when_status_unchanged():
    conds = set_condition([], "Ready", "False", "Waiting", "a", 1, now=T0)
    again = set_condition(conds, "Ready", "False", "StillWaiting", "b", 2, now=T1)
    ready = find_condition(again, "Ready")
    assert ready["lastTransitionTime"] == T0
    assert (ready["reason"], ready["message"], ready["observedGeneration"]) == ("StillWaiting", "b", 2)


def test_transition_time_moves_when_status_changes():
    conds = set_condition([], "Ready", "False", "Waiting", now=T0)
    flipped = set_condition(conds, "Ready", "True", "Ready", now=T1)
    assert find_condition(flipped, "Ready")["lastTransitionTime"] == T1
    assert find_condition(conds, "Ready")["lastTransitionTime"] == T0  # input not mutated


def test_other_conditions_and_order_kept():
    conds = set_condition(set_condition([], "A", "True", "X", now=T0), "B", "False", "Y", now=T0)
    out = set_condition(conds, "A", "False", "Z", now=T1)
    assert [c["type"] for c in out] == ["A", "B"]
    assert out[1] == conds[1]


def test_initial_conditions_fill_missing_as_unknown_and_keep_existing():
    existing = set_condition([], "VMReady", "True", "Running", now=T0)
    out = initial_conditions(existing, SecondaryStorageVM.CONDITIONS, 3, now=T1)
    assert [c["type"] for c in out] == ["VMReady", "SSHReady", "UpToDate", "StoresMounted", "FirewallProgrammed", "Healthy", "Ready"]
    assert find_condition(out, "VMReady")["status"] == "True"
    for cond in out[1:]:
        assert (cond["status"], cond["reason"], cond["observedGeneration"]) == ("Unknown", "Initializing", 3)


def test_the_initial_status_patch_fills_once_then_nothing():
    for model in (Zone, ImageStore, SecondaryStorageVM):
        patch = initial_status_patch({}, {"generation": 1}, model.CONDITIONS)
        assert patch["observedGeneration"] == 1
        assert {c["type"] for c in patch["conditions"]} == set(model.CONDITIONS)
        assert initial_status_patch(patch, {"generation": 1}, model.CONDITIONS) == {}, \
            "a second look at an initialised object must write nothing"


def test_generation_is_left_to_reconcilers_that_own_it():
    done = {"conditions": initial_conditions([], Zone.CONDITIONS, 1), "observedGeneration": 1}
    assert initial_status_patch(done, {"generation": 2}, Zone.CONDITIONS, owns_generation=False) == {}, \
        "a spec change must not be reported as observed before the zone's loop acted on it"
    first = initial_status_patch({}, {"generation": 1}, Zone.CONDITIONS, owns_generation=False)
    assert first["observedGeneration"] == 1  # never empty, even so
    store_done = {"conditions": initial_conditions([], ImageStore.CONDITIONS, 1), "observedGeneration": 1}
    assert initial_status_patch(store_done, {"generation": 2}, ImageStore.CONDITIONS) == {"observedGeneration": 2}
