"""Zone readiness (CloudStack's `isZoneReady`) as conditions, and the zone's status patch.

Each missing piece is its own condition with a reason; `Ready` summarises them and the SSVM counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ssvm_operator.model.vm import BackendReadiness
from ssvm_operator.model.conditions import set_condition
from ssvm_operator.controllers.zone.capacity import CapacityPlan
from ssvm_operator.model.views import CondSpec, SSVMView, StoreView, ZoneView

ENABLED, TEMPLATE, STORES, BACKEND, READY = "SecondaryStorageEnabled", "TemplateReady", "ImageStoreAvailable", "BackendReady", "Ready"


@dataclass(frozen=True)
class ZoneReadiness:
    conditions: tuple[CondSpec, ...]   # the four checks, in the order they are evaluated
    ready: bool

    def first_failure(self) -> CondSpec | None:
        return next((c for c in self.conditions if c.status != "True"), None)


def evaluate_zone_readiness(zone: ZoneView, stores: Sequence[StoreView], backend: BackendReadiness | None,
                            backend_error: tuple[str, str] | None = None) -> ZoneReadiness:
    """`backend` is the backend's own readiness answer, or None with `backend_error` (reason, message) when asking failed."""
    conds: list[CondSpec] = []
    if zone.enabled:
        conds.append(CondSpec(ENABLED, "True", "Enabled", "SSVMs are enabled for this zone."))
    else:
        conds.append(CondSpec(ENABLED, "False", "Disabled", "spec.secondaryStorage.enabled is false: the zone runs no SSVMs."))

    err_reason, err_message = backend_error or ("BackendUnreachable", "The backend did not answer.")
    if not zone.template_configured and zone.backend == "external":
        conds.append(CondSpec(TEMPLATE, "False", "NoExternalHosts", "List the hosts in spec.secondaryStorage.template.external.hosts."))
    elif not zone.template_configured:
        conds.append(CondSpec(TEMPLATE, "False", "TemplateNotConfigured",
                              f"Set spec.secondaryStorage.template.{zone.backend} for the {zone.backend} backend."))
    elif backend is None:
        conds.append(CondSpec(TEMPLATE, "Unknown", err_reason, err_message))
    elif backend.template_ready:
        conds.append(CondSpec(TEMPLATE, "True", "TemplateAvailable", f"The system VM template is available to the {zone.backend} backend."))
    elif backend.can_run_vms:   # the backend's one reason is then about the template (TemplateMissing, CDINotInstalled)
        conds.append(CondSpec(TEMPLATE, "False", backend.reason or "TemplateNotReady",
                              backend.message or f"The {zone.backend} backend has no usable template."))
    else:
        conds.append(CondSpec(TEMPLATE, "False", "TemplateNotReady", backend.message or f"The {zone.backend} backend has no usable template."))

    live = [s for s in stores if not s.deleting]
    writable = sum(1 for s in live if s.writable)
    if writable:
        conds.append(CondSpec(STORES, "True", "WritableStoreAvailable", f"{writable} writable image store(s)."))
    elif live:
        conds.append(CondSpec(STORES, "False", "NoWritableImageStore", f"All {len(live)} image store(s) are read-only."))
    else:
        conds.append(CondSpec(STORES, "False", "NoImageStore", "Add an ImageStore with zoneRef set to this zone."))

    if backend is None:
        conds.append(CondSpec(BACKEND, "False", err_reason, err_message))
    elif backend.can_run_vms and not backend.template_ready:   # its reason went to TemplateReady
        conds.append(CondSpec(BACKEND, "True", "BackendReady", f"The {zone.backend} backend can run VMs."))
    elif backend.can_run_vms:
        conds.append(CondSpec(BACKEND, "True", backend.reason or "BackendReady", backend.message or f"The {zone.backend} backend can run VMs."))
    else:
        conds.append(CondSpec(BACKEND, "False", backend.reason or "BackendNotReady", backend.message or f"The {zone.backend} backend cannot run VMs."))
    return ZoneReadiness(conditions=tuple(conds), ready=all(c.status == "True" for c in conds))


def zone_ready_condition(zone: ZoneView, readiness: ZoneReadiness, plan: CapacityPlan, ssvms: Sequence[SSVMView]) -> CondSpec:
    live = [s for s in ssvms if not s.deleting]
    if not zone.enabled:
        moving = [s.name for s in live if s.state not in ("Stopped", "Error", "Destroyed")]
        if moving:
            return CondSpec(READY, "False", "StoppingSSVMs", f"SSVMs are disabled; waiting for {len(moving)} to stop.")
        return CondSpec(READY, "True", "SecondaryStorageDisabled", f"SSVMs are disabled for this zone; {len(live)} kept stopped.")
    failure = readiness.first_failure()
    if failure is not None:
        return CondSpec(READY, "False", failure.reason, failure.message)
    wanted = [s for s in live if s.desired_state == "Running"]
    running = sum(1 for s in wanted if s.state == "Running")
    failing = [s for s in wanted if s.failing]
    if failing:
        return CondSpec(READY, "False", "SSVMsFailing", failing_message(failing, len(wanted)))
    if plan.empty and running == len(wanted) and not plan.notes:
        return CondSpec(READY, "True", "SSVMsRunning", f"{running} SSVM(s) running.")
    if plan.notes:
        return CondSpec(READY, "False", plan.limit_reason or "CapacityLimited", "; ".join(plan.notes))
    return CondSpec(READY, "False", "Progressing", f"{running} of {max(plan.desired, len(wanted))} SSVM(s) running.")


def failing_message(failing: Sequence[SSVMView], wanted: int) -> str:
    """`3 of 3 SSVMs HostKeyMismatch`, one part per reason, most frequent first, then the first one's own words."""
    by_reason: dict[str, list[SSVMView]] = {}
    for s in sorted(failing, key=lambda s: s.name):
        by_reason.setdefault(s.ready_reason, []).append(s)
    parts = [f"{len(group)} of {wanted} SSVMs {reason}" for reason, group in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    first = min(failing, key=lambda s: s.name)
    detail = first.ready_message[:300] + ("..." if len(first.ready_message) > 300 else "")
    return f"{', '.join(parts)}; {first.name}: {detail}" if detail else ", ".join(parts)


def zone_status_patch(status: Mapping[str, Any] | None, zone: ZoneView, readiness: ZoneReadiness, plan: CapacityPlan,
                      ssvms: Sequence[SSVMView], now: str | None = None, extra: Sequence[CondSpec] = ()) -> dict[str, Any]:
    """The status fields that differ from `status`; empty when nothing changed (no churn, no moving timestamps)."""
    status = status or {}
    counts = plan.counts
    wanted: dict[str, Any] = {
        "observedGeneration": zone.generation,
        "desiredSSVMs": plan.desired,
        "actualSSVMs": counts.actual,
        "runningSSVMs": counts.running,
        "imageStores": counts.image_stores,
        "writableImageStores": counts.writable_image_stores,
        "activeSessions": counts.active_sessions,
    }
    patch = {k: v for k, v in wanted.items() if status.get(k) != v and v is not None}
    conditions = list(status.get("conditions") or [])
    for cond in (*readiness.conditions, zone_ready_condition(zone, readiness, plan, ssvms), *extra):
        conditions = set_condition(conditions, cond.type, cond.status, cond.reason, cond.message, zone.generation, now)
    if conditions != list(status.get("conditions") or []):
        patch["conditions"] = conditions
    return patch


def store_conditions_patch(status: Mapping[str, Any], body: Mapping[str, Any], *conds: CondSpec) -> dict[str, Any]:
    """An ImageStore's status patch setting the zone controller's conditions (ZoneFound, URLUnique); empty when they say so already."""
    current = list(status.get("conditions") or [])
    new = current
    for cond in conds:
        new = set_condition(new, cond.type, cond.status, cond.reason, cond.message, body["metadata"].get("generation"))
    return {"conditions": new} if new != current else {}
