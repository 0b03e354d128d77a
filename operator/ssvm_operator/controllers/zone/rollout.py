"""Rolling replacement when the template or offering changes (CloudStack's `cloudstack-sysvmadm`).

Each VM carries the hash of the template and offering it was built from (`material_hash`); an SSVM
whose VM's hash differs from the one its zone (or its own override) now asks for is outdated
(`UpToDate=False`). The zone replaces outdated SSVMs one at a time, through the SSVM's recreate
request (or its reboot request when a restart suffices), and only while every other SSVM of the zone
is Ready, so a zone with N SSVMs keeps N-1 serving.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ssvm_operator.model.naming import slot_of
from ssvm_operator.model.spec_hash import (
    OFFERING_CHANGED,
    RESTART_REQUIRED,
    TEMPLATE_CHANGED,
    UP_TO_DATE,
    material_hash,
    outdated_reason,
)
from ssvm_operator.model.views import CondSpec, SSVMView, ZoneView

ZONE_UP_TO_DATE = "SSVMsUpToDate"      # the zone's condition
ROLLING_UPDATE = "RollingUpdate"
ROLLING_UPDATE_PAUSED = "RollingUpdatePaused"
TOKEN_PREFIX = "upgrade-"
RESTART_PREFIX = "restart-"   # a reboot token apart from recreate tokens, so one cannot look acknowledged by the other
@dataclass(frozen=True)
class ReplaceSSVM:
    name: str
    action: str   # "recreate" or "reboot" (the backend's spec is current, only the instance is old)
    token: str    # the request token, also kept in the SSVM's upgrading annotation
    reason: str   # TemplateChanged, OfferingChanged, RestartRequired


_NO_SSVMS = CondSpec(ZONE_UP_TO_DATE, "True", UP_TO_DATE, "No SSVMs.")


@dataclass(frozen=True)
class RolloutPlan:
    replace: ReplaceSSVM | None = None
    finished: tuple[str, ...] = ()   # replaced and settled: their upgrading annotation is removed
    condition: CondSpec = _NO_SSVMS

    @property
    def empty(self) -> bool:
        return self.replace is None and not self.finished


def _settled(s: SSVMView) -> bool:
    """Serving (Ready), or stopped as desired."""
    return s.ready if s.desired_state == "Running" else s.state == "Stopped"


def _acted(s: SSVMView) -> bool:
    return bool(s.upgrading) and s.upgrading in (s.observed_recreate, s.observed_reboot)


def plan_rollout(zone: ZoneView, ssvms: Sequence[SSVMView], desired_hashes: Mapping[str, str], *, ready: bool) -> RolloutPlan:
    """At most one replacement per zone at a time; `desired_hashes` is each SSVM's `material_hash`."""
    live = [s for s in ssvms if not s.deleting]
    finished = tuple(s.name for s in live if _acted(s) and _settled(s))
    busy = [s for s in live if s.upgrading and s.name not in finished]
    outdated = [s for s in live if s.up_to_date == "False" and s.name not in finished and not s.upgrading]
    current = sum(1 for s in live if s.up_to_date != "False" and s not in busy)
    progress = f"{current} of {len(live)} SSVM(s) up to date"
    if not busy and not outdated:   # no count in the message: SSVMs coming and going would rewrite it
        return RolloutPlan(finished=finished, condition=CondSpec(
            ZONE_UP_TO_DATE, "True", UP_TO_DATE, "Every SSVM runs the current template and offering."))
    if busy:
        names = ", ".join(s.name for s in busy)
        return RolloutPlan(finished=finished, condition=CondSpec(
            ZONE_UP_TO_DATE, "False", ROLLING_UPDATE, f"{progress}; replacing {names}, waiting for it to be Ready."))
    if zone.deleting or not zone.enabled or not ready:
        why = "the zone is disabled" if not zone.enabled else "the zone is not ready"
        return RolloutPlan(finished=finished, condition=CondSpec(
            ZONE_UP_TO_DATE, "False", ROLLING_UPDATE_PAUSED, f"{progress}; paused: {why}."))

    def order(s: SSVMView) -> tuple[bool, int, str]:
        slot = slot_of(zone.name, s.name)
        return (_settled(s), slot if slot is not None else 1 << 30, s.name)   # one already down costs no serving capacity

    for s in sorted(outdated, key=order):
        waiting = [o.name for o in live if o.name != s.name and o.desired_state == "Running" and not o.ready]
        if waiting:
            continue
        action = "reboot" if s.outdated_reason == RESTART_REQUIRED else "recreate"
        token = f"{TOKEN_PREFIX if action == 'recreate' else RESTART_PREFIX}{desired_hashes.get(s.name, '')}"[:63]
        return RolloutPlan(replace=ReplaceSSVM(s.name, action, token, s.outdated_reason or TEMPLATE_CHANGED), finished=finished,
                           condition=CondSpec(ZONE_UP_TO_DATE, "False", ROLLING_UPDATE,
                                              f"{progress}; replacing {s.name} ({s.outdated_reason})."))
    waiting = sorted(o.name for o in live if o.desired_state == "Running" and not o.ready)
    return RolloutPlan(finished=finished, condition=CondSpec(
        ZONE_UP_TO_DATE, "False", ROLLING_UPDATE, f"{progress}; waiting for {', '.join(waiting)} to be Ready."))
