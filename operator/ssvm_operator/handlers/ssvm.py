"""SecondaryStorageVM handlers: an index per zone, one lifecycle loop per SSVM, and the finalizer.

The loop observes the VM, plans (core.lifecycle), acts through the zone's backend, passes the start
gate, and writes status only when it changed. It polls quickly while the SSVM is in transition and
every `scan_interval` when steady; backend errors back off exponentially and become conditions and
(once per new reason) Warning Events.
"""
from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import time
from typing import Any, Mapping

import kopf

from .. import constants as c
from .. import metrics
from ..backends.base import BackendError, ObservedVM, VMBackend, VMPhase
from ..core import events as ev
from ..core.lifecycle import (
    GateResult,
    LifecyclePlan,
    SSVMRequest,
    plan_ssvm_lifecycle,
    ssvm_status_patch,
    transition_events,
)
from ..core.start_timeout import start_timeout_due
from ..core.views import POOL_RESTART_ANNOTATION, UPGRADING_ANNOTATION
from . import ids
from .kubeapi import ApiError
from .runtime import Runtime, backoff_delay, object_ref, post_events

KIND = c.SSVM_KIND
GATE_TIMEOUT = 30.0
STEADY = ("Running", "Stopped", "Error")


def index_ssvm(namespace: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    meta, spec, status = body.get("metadata", {}), body.get("spec") or {}, body.get("status") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k in (POOL_RESTART_ANNOTATION, UPGRADING_ANNOTATION)}
    conditions = [dict(x) for x in status.get("conditions") or [] if x.get("type") in ("Ready", "UpToDate")]
    return {(namespace, spec.get("zoneRef", "")): {
        "metadata": {"name": meta.get("name"), "uid": meta.get("uid"), "labels": dict(meta.get("labels") or {}), "annotations": annotations,
                     "deletionTimestamp": meta.get("deletionTimestamp")},
        "spec": {"role": spec.get("role", "templateProcessor"), "desiredState": spec.get("desiredState", "Running"),
                 **{k: copy.deepcopy(spec[k]) for k in ("template", "offering") if spec.get(k)}},   # overrides: the rolling update's hash
        "status": {"state": status.get("state"), "health": {"activeSessions": (status.get("health") or {}).get("activeSessions", 0)},
                   "conditions": conditions, "observedRecreateRequest": status.get("observedRecreateRequest"),
                   "observedRebootRequest": status.get("observedRebootRequest")},
    }}


def on_ssvm_event(type: str | None, namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt: Runtime | None = memo.get("runtime")
    if rt is None or not namespace:
        return
    zone = (body.get("spec") or {}).get("zoneRef")
    if zone:
        rt.wake(c.ZONE_KIND, namespace, zone)
    rt.wake(KIND, namespace, name)


def _zone_ref(zone: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not zone:
        return None
    m = zone["metadata"]
    return object_ref(c.ZONE_KIND, m["namespace"], m["name"], m.get("uid"))


def _bind(backend: VMBackend, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None) -> None:
    """Backends that map SSVMs onto hosts (external) learn which SSVM and zone a name is before acting on it."""
    bind = getattr(backend, "bind", None)
    if bind is not None:
        bind(ssvm, zone)


async def _act(backend: VMBackend, rt: Runtime, plan: LifecyclePlan, ssvm: Mapping[str, Any], zone: Mapping[str, Any]) -> None:
    ns, name = ssvm["metadata"]["namespace"], ssvm["metadata"]["name"]
    for action in plan.actions:
        if action.kind == "ensure":
            request = rt.vm_request(ssvm, zone, bool(action.running))
            await backend.ensure(await request if inspect.isawaitable(request) else request)  # the guest builder is async (key Secrets)
        elif action.kind == "start":
            await backend.start(ns, name)
        elif action.kind == "stop":
            await backend.stop(ns, name)
        elif action.kind == "reboot":
            await backend.reboot(ns, name)
        elif action.kind == "destroy":
            await backend.destroy(ns, name)


async def _gate(rt: Runtime, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None, observed: ObservedVM | None,
                backend: VMBackend) -> GateResult:
    if observed is None or observed.phase != VMPhase.RUNNING:
        return GateResult(False, "VMNotRunning", "The VM is not running.")
    try:
        return await asyncio.wait_for(rt.start_gate.check(ssvm=ssvm, zone=zone, observed=observed, backend=backend), GATE_TIMEOUT)
    except asyncio.TimeoutError:
        return GateResult(False, "StartGateTimeout", f"The start gate did not answer within {GATE_TIMEOUT:.0f}s.")
    except Exception as e:  # noqa: BLE001 - a failing gate holds the SSVM in Starting, it never crashes the loop
        return GateResult(False, "StartGateError", str(e)[:300])


async def _write_status(rt: Runtime, ssvm: Mapping[str, Any], compute: Any) -> dict[str, Any]:
    """Writes `compute(status)` against the object's resourceVersion, recomputing on a fresh read after a conflict."""
    ns, name = ssvm["metadata"]["namespace"], ssvm["metadata"]["name"]
    current: Mapping[str, Any] | None = ssvm
    for _ in range(3):
        if current is None or current["metadata"].get("deletionTimestamp"):
            return {}
        patch = compute(current.get("status"), current)
        if not patch:
            return {}
        try:
            before = current["metadata"].get("resourceVersion")
            response = await rt.api.patch_status(c.SSVM_PLURAL, ns, name, patch, before)
            rt.remember_write(KIND, ns, name, (ssvm["metadata"].get("resourceVersion"), before), response)
            return patch
        except ApiError as e:
            if e.status != 409:
                raise
        current = await rt.api.get(c.SSVM_PLURAL, ns, name)
    return {}


def _plan_once(rt: Runtime, key: tuple[str, str, str], req: SSVMRequest, observed: ObservedVM | None,
               zone_found: bool, zone_enabled: bool) -> LifecyclePlan:
    """The lifecycle plan, never repeating a reboot or recreate this process already carried out.

    The acknowledgement is written after acting; until it is stored and seen (a 409, a lagging watch)
    the token looks pending, so it is planned as acknowledged and the acknowledgement written again.
    """
    done = rt.acted_requests.get(key, {})
    repeat_reboot = req.reboot_pending and done.get("reboot") == req.reboot_request
    repeat_recreate = bool(req.recreate_request) and req.recreate_request != req.observed_recreate \
        and done.get("recreate") == req.recreate_request
    if not (repeat_reboot or repeat_recreate):
        return plan_ssvm_lifecycle(req, observed, zone_found=zone_found, zone_enabled=zone_enabled)
    settled = dataclasses.replace(req, observed_reboot=req.reboot_request if repeat_reboot else req.observed_reboot,
                                  observed_recreate=req.recreate_request if repeat_recreate else req.observed_recreate)
    plan = plan_ssvm_lifecycle(settled, observed, zone_found=zone_found, zone_enabled=zone_enabled)
    return dataclasses.replace(plan, ack_reboot=plan.ack_reboot or (req.reboot_request if repeat_reboot else None),
                               ack_recreate=plan.ack_recreate or (req.recreate_request if repeat_recreate else None))


def _remember_acted(rt: Runtime, key: tuple[str, str, str], plan: LifecyclePlan) -> None:
    done = rt.acted_requests.setdefault(key, {})
    if plan.ack_reboot:
        done["reboot"] = plan.ack_reboot
    if plan.ack_recreate:
        done["recreate"] = plan.ack_recreate


async def _start_timed_out(rt: Runtime, ssvm: Mapping[str, Any], zone_spec: Mapping[str, Any], observed: ObservedVM,
                           gate: GateResult) -> bool:
    """Recreates (by a recreate request) a running VM whose start gate has failed for the zone's start timeout."""
    meta = ssvm["metadata"]
    timeout = float(((zone_spec.get("secondaryStorage") or {}).get("health") or {}).get("startTimeoutSeconds", 600))
    if not start_timeout_due(rt.gate_failing_since, (KIND, meta["namespace"], meta["name"]), observed.instance_id,
                             not gate.passed, gate.reason, time.monotonic(), timeout):
        return False
    token = f"start-timeout-{int(time.time())}"
    response = await rt.api.patch(c.SSVM_PLURAL, meta["namespace"], meta["name"], {"spec": {"recreateRequest": token}})
    rt.remember_write(KIND, meta["namespace"], meta["name"], (meta.get("resourceVersion"),), response)
    rt.wake(KIND, meta["namespace"], meta["name"])
    return True


async def reconcile_ssvm(rt: Runtime, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None, logger: Any) -> tuple[bool, float | None, bool]:
    """One pass. Returns (steady, backoff hint when a backend call failed, acted)."""
    meta = ssvm["metadata"]
    ns, name = meta["namespace"], meta["name"]
    if meta.get("deletionTimestamp"):
        return True, None, False
    zone_spec = (zone or {}).get("spec") or {}
    zone_found = zone is not None
    zone_enabled = (zone_spec.get("secondaryStorage") or {}).get("enabled", True)
    req = SSVMRequest.from_body(ssvm, zone_spec)
    backend = rt.backends.for_zone(zone_spec) if zone_found else None
    error: tuple[str, str] | None = None
    hint: float | None = None
    observed: ObservedVM | None = None
    failed_action = ""
    if backend is not None:
        _bind(backend, ssvm, zone)
        try:
            observed = await backend.observe(ns, name)
        except BackendError as e:
            error, hint = (e.reason, e.message), e.retry_after
    plan = _plan_once(rt, (KIND, ns, name), req, observed, zone_found, zone_enabled)
    acted = bool(plan.actions)
    if plan.actions and backend is not None and zone is not None:
        try:
            await _act(backend, rt, plan, ssvm, zone)
            _remember_acted(rt, (KIND, ns, name), plan)
        except BackendError as e:
            error, hint = (e.reason, e.message), e.retry_after
            failed_action = plan.actions[0].kind if len(plan.actions) == 1 else "recreate"
            plan = dataclasses.replace(plan, ack_reboot=None, ack_recreate=None, events=(), set_desired_state=None)
        try:
            observed = await backend.observe(ns, name)
        except BackendError as e:
            error, hint = error or (e.reason, e.message), hint or e.retry_after
    if plan.set_desired_state or plan.clear_pool_restart:
        patch: dict[str, Any] = {}
        if plan.set_desired_state:
            patch["spec"] = {"desiredState": plan.set_desired_state}
        if plan.clear_pool_restart:
            patch["metadata"] = {"annotations": {POOL_RESTART_ANNOTATION: None}}
        response = await rt.api.patch(c.SSVM_PLURAL, ns, name, patch)
        rt.remember_write(KIND, ns, name, (meta.get("resourceVersion"),), response)
        ssvm = response
    gate = await _gate(rt, ssvm, zone, observed, backend) if backend is not None else GateResult(False, "ZoneNotFound")
    kind = rt.backends.kind_of(zone_spec)
    written = await _write_status(rt, ssvm, lambda status, current: ssvm_status_patch(
        status, dataclasses.replace(req, generation=current["metadata"].get("generation")), observed, gate, plan=plan,
        zone_found=zone_found, backend_kind=kind, error=error))
    old_state = (ssvm.get("status") or {}).get("state")
    events = list(plan.events) + list(transition_events(name, old_state, written.get("state", old_state)))
    if rt.error_changed((KIND, ns, name), error[0] if error else None):
        reason = ev.SSVM_CREATE_FAILED if failed_action in ("ensure", "recreate") else (
            ev.SSVM_START_FAILED if failed_action == "start" else ev.BACKEND_ERROR)
        events.append(ev.EventSpec(reason, f"{name}: {error[0]}: {error[1]}"[:1024], "Warning"))
        logger.warning("SSVM %s: backend %s failed: %s", name, failed_action or "observe", error[1])
    if observed is not None and observed.phase == VMPhase.RUNNING and await _start_timed_out(rt, ssvm, zone_spec, observed, gate):
        events.append(ev.EventSpec(ev.SSVM_START_FAILED, f"{name}: SSH on {c.SSH_PORT} did not answer in time ({gate.reason}: "
                                   f"{gate.message})"[:900] + "; recreating the VM.", "Warning"))
    post_events(events, object_ref(KIND, ns, name, meta.get("uid")), _zone_ref(zone))
    state = written.get("state", old_state)
    steady = error is None and state in STEADY and not (observed and observed.phase == VMPhase.RUNNING and not gate.passed)
    return steady, (hint if error else None), acted


async def ssvm_daemon(namespace: str, name: str, body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: Any,
                      zones_by_name: kopf.Index, **_: Any) -> None:
    rt: Runtime = memo.runtime
    errors = transitions = 0
    while not stopped:
        rt.waker(KIND, namespace, name).clear()
        ssvm = rt.freshest(KIND, namespace, name, copy.deepcopy(dict(body)))
        zone_ref = (ssvm.get("spec") or {}).get("zoneRef", "")
        zone = next(iter(zones_by_name.get((namespace, zone_ref), [])), None)
        try:
            with metrics.observe_reconcile(KIND):
                steady, hint, acted = await reconcile_ssvm(rt, ssvm, copy.deepcopy(zone) if zone else None, logger)
        except ApiError as e:
            steady, hint, acted = False, 1.0, False
            logger.warning("SSVM %s: API error %s %s", name, e.status, e.reason)
        if hint is not None:
            errors += 1
            delay = backoff_delay(errors, hint, rt.max_backoff)
        elif steady:
            errors = transitions = 0
            delay = rt.config.scan_interval
        else:
            errors = 0
            transitions = 0 if acted else transitions + 1
            delay = min(5.0, rt.fast_poll * (1.5 ** min(transitions, 10)))
        await rt.sleep(KIND, namespace, name, delay, stopped)


async def ssvm_deleted(namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, logger: Any, zones_by_name: kopf.Index,
                       **_: Any) -> None:
    """The finalizer: the SSVM's VM is destroyed before the object goes."""
    rt: Runtime = memo.runtime
    zone_name = (body.get("spec") or {}).get("zoneRef", "")
    zone = next(iter(zones_by_name.get((namespace, zone_name), [])), None)
    backend_kind = ((body.get("status") or {}).get("backendRef") or {}).get("backend", "kubevirt")
    spec = (zone or {}).get("spec") or {"secondaryStorage": {"backend": backend_kind}}
    backend = rt.backends.for_zone(spec)
    ssvm_ref = object_ref(KIND, namespace, name, body["metadata"].get("uid"))
    _bind(backend, body, zone)
    try:
        await backend.destroy(namespace, name)
    except BackendError as e:
        if rt.error_changed((KIND, namespace, name), e.reason):
            post_events([ev.EventSpec(ev.BACKEND_ERROR, f"Destroying the VM of {name} failed: {e.reason}: {e.message}", "Warning")],
                        ssvm_ref, _zone_ref(zone))
        raise kopf.TemporaryError(f"destroying the VM failed: {e.reason}", delay=e.retry_after or 10.0) from None
    post_events([ev.EventSpec(ev.SSVM_DESTROYED, f"SSVM {name} and its VM destroyed.")], ssvm_ref, _zone_ref(zone))
    rt.forget(KIND, namespace, name)
    rt.wake(c.ZONE_KIND, namespace, zone_name)
    logger.info("SSVM %s: VM destroyed", name)


def register(registry: kopf.OperatorRegistry) -> None:
    g, v, p = c.GROUP, c.VERSION, c.SSVM_PLURAL
    kopf.index(g, v, p, id=ids.SSVMS_INDEX, registry=registry)(index_ssvm)
    kopf.on.event(g, v, p, id=ids.SSVM_EVENT, registry=registry)(on_ssvm_event)
    kopf.daemon(g, v, p, id=ids.SSVM_LIFECYCLE, registry=registry, cancellation_timeout=5.0)(ssvm_daemon)
    kopf.on.delete(g, v, p, id=ids.SSVM_FINALIZER, registry=registry)(ssvm_deleted)
