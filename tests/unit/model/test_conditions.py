"""Conditions: lastTransitionTime moves only when status does; initial conditions never overwrite."""
from __future__ import annotations

import kopf

from ssvm_operator.api import ImageStore, SecondaryStorageVM, Zone
from ssvm_operator.model.conditions import find_condition, initial_conditions, set_condition
from ssvm_operator.controllers.status_init import initialize_status

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


def test_initialize_status_patches_once_then_not_again():
    for model in (Zone, ImageStore, SecondaryStorageVM):
        patch = kopf.Patch()
        initialize_status({}, {"generation": 1}, patch, model.CONDITIONS)
        assert patch["status"]["observedGeneration"] == 1
        assert {c["type"] for c in patch["status"]["conditions"]} == set(model.CONDITIONS)
        second = kopf.Patch()
        initialize_status(patch["status"], {"generation": 1}, second, model.CONDITIONS)
        assert not second, "a second pass over an initialised object must write nothing"


def test_generation_is_left_to_reconcilers_that_own_it():
    done = {"conditions": initial_conditions([], Zone.CONDITIONS, 1), "observedGeneration": 1}
    patch = kopf.Patch()
    initialize_status(done, {"generation": 2}, patch, Zone.CONDITIONS, owns_generation=False)
    assert not patch, "a spec change must not be reported as observed before the zone's loop acted on it"
    first = kopf.Patch()
    initialize_status({}, {"generation": 1}, first, Zone.CONDITIONS, owns_generation=False)
    assert first["status"]["observedGeneration"] == 1  # never empty, even so
    store = kopf.Patch()
    store_done = {"conditions": initial_conditions([], ImageStore.CONDITIONS, 1), "observedGeneration": 1}
    initialize_status(store_done, {"generation": 2}, store, ImageStore.CONDITIONS)
    assert store["status"] == {"observedGeneration": 2}
