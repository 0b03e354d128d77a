"""Zone situations -> capacity plans: every rule of CloudStack's manager and of the premium manager."""
from __future__ import annotations

import pytest

from ssvm_operator.controllers.zone.capacity import CreateSSVM, DestroySSVM, StartSSVM, plan_zone_capacity
from ssvm_operator.model.views import SSVMView, StoreView, ZoneView

TP, CE = "templateProcessor", "commandExecutor"


def zone(**kw) -> ZoneView:
    base = dict(namespace="ns", name="z1", template_configured=True, min_running=1, max_count=5, session_max=50, standby_sessions=10)
    base.update(kw)
    return ZoneView(**base)


def stores(n: int, read_only: int = 0) -> list[StoreView]:
    return [StoreView(f"s{i}") for i in range(n)] + [StoreView(f"ro{i}", writable=False) for i in range(read_only)]


def vm(slot: int, state: str | None = "Running", **kw) -> SSVMView:
    return SSVMView(name=f"z1-ssvm-{slot}", state=state, **kw)


def names(items) -> list[tuple[str, str]]:
    return [(i.name, getattr(i, "role", None) or i.reason) for i in items]


SEED_RULE_CASES = [
    # (title, stores, ssvms, expected creates)
    ("empty zone, one store -> one templateProcessor", stores(1), [], [("z1-ssvm-1", TP)]),
    ("two stores -> two", stores(2), [], [("z1-ssvm-1", TP), ("z1-ssvm-2", TP)]),
    ("read-only stores do not count", stores(1, read_only=3), [], [("z1-ssvm-1", TP)]),
    ("balanced: nothing", stores(2), [vm(1), vm(2)], []),
    ("a third store adds a third in the lowest free slot", stores(3), [vm(1), vm(3)], [("z1-ssvm-2", TP)]),
    ("stopped ones count (CloudStack's states)", stores(2), [vm(1), vm(2, "Stopped", desired_state="Stopped")], []),
    ("stopping, starting, migrating count", stores(3), [vm(1, "Stopping"), vm(2, "Starting"), vm(3, "Migrating")], []),
    ("in-flight creations are not repeated", stores(2), [vm(1, None), vm(2, "Creating")], []),
    ("an Error SSVM keeps its slot", stores(1), [vm(1, "Error")], []),
    ("commandExecutors do not count for CloudStack's rule", stores(2), [vm(1), vm(2, role=CE)], [("z1-ssvm-3", TP)]),
    ("deleting ones do not count but keep their names", stores(1), [vm(1, deleting=True)], [("z1-ssvm-2", TP)]),
    ("more SSVMs than stores: no shrink by CloudStack's rule", stores(1), [vm(1), vm(2)], []),
]


@pytest.mark.parametrize("title,store_list,ssvms,expected", SEED_RULE_CASES, ids=[c[0] for c in SEED_RULE_CASES])
def test_cloudstack_rule(title, store_list, ssvms, expected):
    plan = plan_zone_capacity(zone(), store_list, ssvms, ready=True)
    assert [(c.name, c.role) for c in plan.creates] == expected
    assert not plan.starts and not plan.destroys


def test_not_ready_zone_creates_nothing():
    plan = plan_zone_capacity(zone(), stores(3), [], ready=False)
    assert plan.empty
    assert plan.desired == 3
    assert "not ready" in plan.notes[0]


def test_disabled_zone_creates_and_starts_nothing():
    plan = plan_zone_capacity(zone(enabled=False), stores(2), [vm(1, "Stopped", desired_state="Stopped")], ready=True)
    assert plan.empty and plan.desired == 0


def test_deleting_zone_does_nothing():
    assert plan_zone_capacity(zone(deleting=True), stores(2), [], ready=True).empty


def test_min_running_restarts_from_stopped_pool_before_creating():
    ssvms = [vm(1, "Stopped", desired_state="Stopped"), vm(2, "Stopped", desired_state="Stopped")]
    plan = plan_zone_capacity(zone(min_running=1), stores(2), ssvms, ready=True)
    assert plan.starts == (StartSSVM("z1-ssvm-1", "MinRunning"),)
    assert not plan.creates


def test_min_running_creates_template_processors_when_pool_is_empty():
    plan = plan_zone_capacity(zone(min_running=3), stores(1), [vm(1)], ready=True)
    assert names(plan.creates) == [("z1-ssvm-2", TP), ("z1-ssvm-3", TP)]


@pytest.mark.parametrize("order", ["stores first", "one store, then two"])
def test_the_count_does_not_depend_on_the_order_stores_arrive_in(order):
    """minRunning 2 with two stores: two SSVMs, whether the zone saw both stores at once or one after the other."""
    z = zone(min_running=2)
    ssvms: list[SSVMView] = []
    for seen in ([2] if order == "stores first" else [1, 2]):
        plan = plan_zone_capacity(z, stores(seen), ssvms, ready=True)
        ssvms += [SSVMView(name=c.name, role=c.role, state="Running") for c in plan.creates]
    assert len(ssvms) == 2 and plan_zone_capacity(z, stores(2), ssvms, ready=True).empty


def test_a_slot_name_held_by_another_zones_ssvm_is_skipped():
    plan = plan_zone_capacity(zone(), stores(2), [], ready=True, held_elsewhere={"z1-ssvm-1"})
    assert [c.name for c in plan.creates] == ["z1-ssvm-2", "z1-ssvm-3"]


def test_pool_prefers_template_processors_then_lowest_slot():
    ssvms = [vm(1, "Stopped", desired_state="Stopped", role=CE), vm(2, "Stopped", desired_state="Stopped"),
             vm(3, "Stopped", desired_state="Stopped")]
    plan = plan_zone_capacity(zone(min_running=1), stores(1), ssvms, ready=True)
    assert [s.name for s in plan.starts] == ["z1-ssvm-2"]


def test_one_stopping_into_the_pool_is_waited_for_not_replaced():
    for state in ("Running", "Stopping"):
        plan = plan_zone_capacity(zone(min_running=1), stores(1), [vm(1, state, desired_state="Stopped")], ready=True)
        assert plan.empty


def test_users_ssvms_are_not_taken_from_the_pool():
    plan = plan_zone_capacity(zone(min_running=1), stores(1), [vm(1, "Stopped", desired_state="Stopped", managed=False)], ready=True)
    assert not plan.starts
    assert names(plan.creates) == [("z1-ssvm-2", TP)]


def test_stopped_with_desired_running_is_up_already():
    plan = plan_zone_capacity(zone(min_running=1), stores(1), [vm(1, "Stopped")], ready=True)
    assert plan.empty


LOAD_CASES = [
    # running SSVMs' active sessions, standby, sessionMax, expected new commandExecutors
    ("plenty of free slots", [0], 10, 50, 0),
    ("free slots just at standby", [40], 10, 50, 0),
    ("free slots under standby -> one more", [41], 10, 50, 1),
    ("far under -> as many as needed", [50, 50], 120, 50, 3),
]


@pytest.mark.parametrize("title,sessions,standby,session_max,expected", LOAD_CASES, ids=[c[0] for c in LOAD_CASES])
def test_load_scale_out(title, sessions, standby, session_max, expected):
    ssvms = [vm(i + 1, active_sessions=n) for i, n in enumerate(sessions)]
    plan = plan_zone_capacity(zone(standby_sessions=standby, session_max=session_max, max_count=10), stores(len(sessions)), ssvms,
                              ready=True)
    assert [c.role for c in plan.creates] == [CE] * expected
    assert all(c.reason == "SessionLoad" for c in plan.creates)


def test_starting_ssvms_count_for_free_slots_so_load_does_not_repeat():
    ssvms = [vm(1, active_sessions=45), vm(2, "Starting", role=CE)]
    assert plan_zone_capacity(zone(), stores(1), ssvms, ready=True).empty


def test_max_count_caps_creation_cloudstack_rule_first():
    plan = plan_zone_capacity(zone(max_count=3, min_running=5), stores(4), [vm(1)], ready=True)
    assert names(plan.creates) == [("z1-ssvm-2", TP), ("z1-ssvm-3", TP)]
    assert "maxCount 3" in plan.notes[0]


def test_max_count_reached_creates_nothing():
    plan = plan_zone_capacity(zone(max_count=2), stores(5), [vm(1), vm(2)], ready=True)
    assert plan.empty and plan.notes


def test_failed_restart_from_pool_is_destroyed_and_replaced():
    ssvms = [vm(1), vm(2, "Error", pool_restart=True)]
    plan = plan_zone_capacity(zone(), stores(2), ssvms, ready=True)
    assert plan.destroys == (DestroySSVM("z1-ssvm-2", "RestartFailed"),)
    assert names(plan.creates) == [("z1-ssvm-3", TP)]   # the failed one's name is still taken while it goes


def test_error_without_pool_restart_is_kept():
    assert plan_zone_capacity(zone(), stores(1), [vm(1, "Error")], ready=True).empty


SCALE_IN_CASES = [
    ("disabled: idle executor kept", dict(scale_in=False), [vm(1), vm(2, role=CE)], []),
    ("enabled: idle executor destroyed", dict(scale_in=True), [vm(1), vm(2, role=CE)], ["z1-ssvm-2"]),
    ("busy executor kept", dict(scale_in=True), [vm(1), vm(2, role=CE, active_sessions=1)], []),
    ("template processors beyond the stores' need go (minRunning lowered)", dict(scale_in=True), [vm(1), vm(2)], ["z1-ssvm-2"]),
    ("executors before surplus template processors", dict(scale_in=True), [vm(1), vm(2), vm(3, role=CE)], ["z1-ssvm-3"]),
    ("not under minRunning", dict(scale_in=True, min_running=2), [vm(1), vm(2, role=CE)], []),
    ("not if load would want it back", dict(scale_in=True, standby_sessions=60), [vm(1), vm(2, role=CE)], []),
    ("one at a time, highest slot first", dict(scale_in=True), [vm(1), vm(2, role=CE), vm(3, role=CE)], ["z1-ssvm-3"]),
    ("users' executors kept", dict(scale_in=True), [vm(1), vm(2, role=CE, managed=False)], []),
]


@pytest.mark.parametrize("title,kw,ssvms,expected", SCALE_IN_CASES, ids=[c[0] for c in SCALE_IN_CASES])
def test_scale_in(title, kw, ssvms, expected):
    plan = plan_zone_capacity(zone(**kw), stores(1), ssvms, ready=True)
    assert [d.name for d in plan.destroys] == expected
    assert all(d.reason == "ScaleIn" for d in plan.destroys)
    assert not plan.creates


def test_template_processors_the_stores_need_are_never_scaled_in():
    assert plan_zone_capacity(zone(scale_in=True), stores(2), [vm(1), vm(2)], ready=True).empty


def test_counts_for_status():
    ssvms = [vm(1), vm(2, "Stopped", desired_state="Stopped"), vm(3, "Creating", role=CE), vm(4, deleting=True)]
    plan = plan_zone_capacity(zone(), stores(2, read_only=1), ssvms, ready=True)
    c = plan.counts
    assert (c.image_stores, c.writable_image_stores, c.counted, c.actual, c.running) == (3, 2, 2, 2, 1)
    assert plan.desired == 3


def test_create_is_deterministic_for_the_same_situation():
    a = plan_zone_capacity(zone(), stores(3), [vm(2)], ready=True)
    b = plan_zone_capacity(zone(), stores(3), [vm(2)], ready=True)
    assert a == b and [c.name for c in a.creates] == ["z1-ssvm-1", "z1-ssvm-3"]
    assert isinstance(a.creates[0], CreateSSVM)


def test_a_removed_store_lowers_the_desired_count_and_scale_in_takes_the_surplus():
    two = [vm(1), vm(2)]
    kept = plan_zone_capacity(zone(scale_in=False), stores(1), two, ready=True)
    assert kept.desired == 1 and kept.empty, "the rules want one; without scaleIn the second is kept"
    taken = plan_zone_capacity(zone(scale_in=True), stores(1), two, ready=True)
    assert taken.desired == 1 and [d.name for d in taken.destroys] == ["z1-ssvm-2"]
    busy = plan_zone_capacity(zone(scale_in=True), stores(1), [vm(1), vm(2, active_sessions=3)], ready=True)
    assert busy.desired == 1 and [d.name for d in busy.destroys] == ["z1-ssvm-1"], "an idle one goes, the busy one stays"
