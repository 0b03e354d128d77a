"""How many SSVMs a zone needs, and which to create, start or destroy to get there.

CloudStack's rule first and exactly: count templateProcessor SSVMs in Running, Migrating, Starting,
Stopped or Stopping; while writable stores outnumber them, expand with a templateProcessor. Then the
premium manager's: keep `minRunning` up, keep `standbySessions` free session slots by adding
commandExecutors, never exceed `maxCount`, and (only when enabled) scale in idle SSVMs no rule needs.
Expansion for running capacity takes a Stopped SSVM of the zone before creating one. SSVMs made for
`minRunning` are templateProcessors, so the count does not depend on the order stores and rules arrive in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Container, Sequence

from ssvm_operator.model.naming import free_slot_names, slot_of
from ssvm_operator.model.views import SSVMView, StoreView, ZoneView

NO_FREE_EXTERNAL_HOST = "NoFreeExternalHost"
TEMPLATE_PROCESSOR = "templateProcessor"
COMMAND_EXECUTOR = "commandExecutor"
# Why the planner acts (in the SSVMCreated Event and the operator's log).
REASON_STORE_CAPACITY = "StoreCapacity"
REASON_MIN_RUNNING = "MinRunning"
REASON_SESSION_LOAD = "SessionLoad"
REASON_RESTART_FAILED = "RestartFailed"
REASON_SCALE_IN = "ScaleIn"


@dataclass(frozen=True)
class CreateSSVM:
    name: str
    role: str
    reason: str   # why: StoreCapacity, MinRunning, SessionLoad, Replacement


@dataclass(frozen=True)
class StartSSVM:
    name: str
    reason: str   # MinRunning or SessionLoad: taken from the stopped pool


@dataclass(frozen=True)
class DestroySSVM:
    name: str
    reason: str   # RestartFailed (from the stopped pool) or ScaleIn


@dataclass(frozen=True)
class ZoneCounts:
    image_stores: int = 0
    writable_image_stores: int = 0
    counted: int = 0            # CloudStack's count (templateProcessors in capacity states)
    actual: int = 0             # every SSVM of the zone in a capacity state
    running: int = 0
    active_sessions: int = 0
    free_sessions: int = 0


@dataclass(frozen=True)
class CapacityPlan:
    creates: tuple[CreateSSVM, ...] = ()
    starts: tuple[StartSSVM, ...] = ()
    destroys: tuple[DestroySSVM, ...] = ()
    desired: int = 0
    counts: ZoneCounts = field(default_factory=ZoneCounts)
    notes: tuple[str, ...] = ()   # why something wanted was not done (maxCount, not ready...)
    limit_reason: str = ""        # the condition reason when a limit held creation back (CapacityLimited if empty)

    @property
    def empty(self) -> bool:
        return not (self.creates or self.starts or self.destroys)


def _slot_key(zone: str, s: SSVMView) -> tuple[int, str]:
    slot = slot_of(zone, s.name)
    return (slot if slot is not None else 1 << 30, s.name)


def _counts(stores: Sequence[StoreView], ssvms: Sequence[SSVMView], zone: ZoneView) -> ZoneCounts:
    live_stores = [s for s in stores if not s.deleting]
    up = sum(1 for s in ssvms if s.up)
    active = sum(s.active_sessions for s in ssvms if not s.deleting)
    return ZoneCounts(
        image_stores=len(live_stores),
        writable_image_stores=sum(1 for s in live_stores if s.writable),
        counted=sum(1 for s in ssvms if s.role == TEMPLATE_PROCESSOR and s.counted),
        actual=sum(1 for s in ssvms if s.counted),
        running=sum(1 for s in ssvms if not s.deleting and s.state == "Running"),
        active_sessions=active,
        free_sessions=up * zone.session_max - active)


def _sessions_short(zone: ZoneView, up: int, active: int) -> int:
    """How many more SSVMs bring free session slots back to at least `standbySessions`."""
    free = up * zone.session_max - active
    if free >= zone.standby_sessions:
        return 0
    return math.ceil((zone.standby_sessions - free) / zone.session_max)


def _surplus(zone: ZoneView, live: Sequence[SSVMView], wanted_tp: int, up: int, active: int) -> list[SSVMView]:
    """Idle, running, operator-made SSVMs no rule needs, in the order scale-in takes them: commandExecutors
    first, then templateProcessors beyond the writable stores, highest slot first; never below minRunning
    nor below the free sessions load wants."""
    tps = sum(1 for s in live if s.role == TEMPLATE_PROCESSOR and (s.counted or s.in_flight))
    idle = sorted((s for s in live if s.managed and s.state == "Running" and s.desired_state == "Running" and s.active_sessions == 0),
                  key=lambda s: (s.role == COMMAND_EXECUTOR, _slot_key(zone.name, s)), reverse=True)
    out: list[SSVMView] = []
    for s in idle:
        if s.role == TEMPLATE_PROCESSOR and tps - 1 < wanted_tp:
            continue
        if up - 1 < zone.min_running or _sessions_short(zone, up - 1, active) > 0:
            break
        out.append(s)
        up -= 1
        tps -= s.role == TEMPLATE_PROCESSOR
    return out


def plan_zone_capacity(zone: ZoneView, stores: Sequence[StoreView], ssvms: Sequence[SSVMView], *, ready: bool,
                       held_elsewhere: Container[str] = ()) -> CapacityPlan:
    """The zone's capacity plan; `ssvms` are the zone's SSVM objects (deleting ones too, to keep their names taken);
    `held_elsewhere` answers whether another zone's SSVM uses a name (a user's SSVM may sit on a slot name)."""
    counts = _counts(stores, ssvms, zone)
    live = [s for s in ssvms if not s.deleting]
    if zone.deleting:
        return CapacityPlan(counts=counts, notes=("zone is being deleted",))
    if not zone.enabled:
        return CapacityPlan(counts=counts, notes=("SSVMs are disabled for this zone: existing ones are kept stopped",))
    wanted_tp = counts.writable_image_stores
    if not ready:
        target = min(zone.max_count, max(wanted_tp, zone.min_running, len(live)))
        return CapacityPlan(counts=counts, desired=target, notes=("zone is not ready: nothing is created or started",))

    # A restart from the stopped pool that failed: destroy it, the rules below replace it (CloudStack's recycle).
    destroys = [DestroySSVM(s.name, REASON_RESTART_FAILED) for s in sorted(live, key=lambda s: _slot_key(zone.name, s))
                if s.managed and s.pool_restart and s.state == "Error"]
    gone = {d.name for d in destroys}
    live = [s for s in live if s.name not in gone]

    # CloudStack's rule, with in-flight creations counted so that an asynchronous create is not repeated.
    tp_have = sum(1 for s in live if s.role == TEMPLATE_PROCESSOR and (s.counted or s.in_flight))
    new_roles: list[tuple[str, str]] = [(TEMPLATE_PROCESSOR, REASON_STORE_CAPACITY)] * max(0, wanted_tp - tp_have)

    up = sum(1 for s in live if s.up) + len(new_roles)
    active = sum(s.active_sessions for s in live)
    need_min = max(0, zone.min_running - up)
    need_load = _sessions_short(zone, up, active)
    extra = max(need_min, need_load)
    why = REASON_MIN_RUNNING if need_min >= need_load else REASON_SESSION_LOAD

    pool = sorted((s for s in live if s.managed and s.state == "Stopped" and s.desired_state == "Stopped"),
                  key=lambda s: (s.role != TEMPLATE_PROCESSOR, _slot_key(zone.name, s)))
    starts = [StartSSVM(s.name, why) for s in pool[:extra]]
    # One on its way to Stopped joins the pool in a moment: wait for it rather than create one more.
    soon = sum(1 for s in live if s.managed and s.desired_state == "Stopped" and s.state not in ("Stopped", "Error"))
    # SSVMs kept for minRunning are templateProcessors: a store added later finds its SSVM already there, so the
    # count does not depend on whether stores or minRunning came first; load adds commandExecutors.
    role = TEMPLATE_PROCESSOR if why == REASON_MIN_RUNNING else COMMAND_EXECUTOR
    new_roles += [(role, why)] * max(0, extra - len(starts) - soon)

    notes: list[str] = []
    limit_reason = ""
    room = max(0, zone.max_count - len(live))
    if len(new_roles) > room:
        notes.append(f"maxCount {zone.max_count} reached: {len(new_roles) - room} SSVM(s) not created")
        new_roles = new_roles[:room]
    if zone.host_limit is not None and len(new_roles) > max(0, zone.host_limit - len(live)):
        # an external host serves one SSVM: no more SSVMs than listed hosts
        short = len(new_roles) - max(0, zone.host_limit - len(live))
        notes.append(f"no free external host: {short} SSVM(s) not created (the zone lists {zone.host_limit} host(s))")
        new_roles, limit_reason = new_roles[:len(new_roles) - short], NO_FREE_EXTERNAL_HOST

    taken = [s.name for s in ssvms]
    names = free_slot_names(zone.name, taken, len(new_roles), held_elsewhere)
    creates = [CreateSSVM(name, role, reason) for name, (role, reason) in zip(names, new_roles)]

    surplus = _surplus(zone, live, wanted_tp, up, active) if not creates and not starts and not destroys else []
    if zone.scale_in and surplus:
        destroys.append(DestroySSVM(surplus[0].name, REASON_SCALE_IN))   # one at a time

    # What the rules want: a removed store or a lowered minRunning lowers it, whether or not scale-in acts.
    desired = len(live) + len(creates) - len(surplus)
    return CapacityPlan(creates=tuple(creates), starts=tuple(starts), destroys=tuple(destroys), desired=desired,
                        counts=counts, notes=tuple(notes), limit_reason=limit_reason)
