"""Zone handlers: an index of zones, one reconcile loop per zone, and the finalizer.

The loop wakes on any event of the zone, its stores or its SSVMs (within the batch window), and
otherwise every `scan_interval` seconds as the safety scan; a pass that finds nothing changed writes
nothing. Deleting a zone deletes its SSVMs (each one's finalizer destroys its VM) before it goes.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from typing import Any, Mapping

import kopf

from .. import constants as c
from .. import metrics
from ..backends.base import BackendError
from ..conditions import set_condition
from ..core import events as ev
from ..core.capacity import CapacityPlan, plan_zone_capacity
from ..core.objects import zone_ssvm_object
from ..core.readiness import evaluate_zone_readiness, zone_ready_condition, zone_status_patch
from ..core.views import POOL_RESTART_ANNOTATION, SSVMView, StoreView, ZoneView
from . import ids
from . import rollout as rolling
from .kubeapi import ApiError
from .runtime import Runtime, backoff_delay, object_ref, post_events

KIND = c.ZONE_KIND
PENDING_TTL = 60.0   # seconds a created SSVM is remembered until the index shows it


def index_zone(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    meta = body.get("metadata", {})
    return {(namespace, name): {"metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "generation", "deletionTimestamp")},
                                "spec": copy.deepcopy(dict(body.get("spec") or {}))}}


def on_zone_event(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None and namespace:
        runtime.wake(KIND, namespace, name)


async def _readiness(rt: Runtime, zone: ZoneView, spec: Mapping[str, Any]) -> tuple[Any, tuple[str, str] | None]:
    key = (zone.namespace, zone.name)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    cached = rt.readiness_cache.get(key)
    if cached and cached[1] == digest and time.monotonic() - cached[0] < rt.readiness_ttl:
        return cached[2]
    backend = rt.backends.for_zone(spec)
    try:
        result: tuple[Any, tuple[str, str] | None] = (await backend.readiness(zone.namespace, zone.name, spec), None)
    except BackendError as e:
        result = (None, (e.reason, e.message))
    rt.readiness_cache[key] = (time.monotonic(), digest, result)
    return result


def _with_pending(rt: Runtime, key: tuple[str, str], indexed: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """SSVMs created by an earlier pass whose watch event has not reached the index yet still count."""
    pending = rt.pending_creates.get(key, {})
    seen = {b["metadata"]["name"] for b in indexed}
    now = time.monotonic()
    for name in list(pending):
        if name in seen or now - pending[name][0] > PENDING_TTL:
            del pending[name]
    return indexed + [body for _, body in pending.values()]


async def _carry_out(rt: Runtime, zone: Mapping[str, Any], plan: CapacityPlan, logger: Any) -> list[str]:
    """Creates, starts and destroys SSVM objects; returns what failed (the next pass retries it)."""
    ns, name = zone["metadata"]["namespace"], zone["metadata"]["name"]
    zone_ref = object_ref(KIND, ns, name, zone["metadata"].get("uid"))
    failures: list[str] = []
    for d in plan.destroys:
        try:
            await rt.api.delete(c.SSVM_PLURAL, ns, d.name)
            logger.info("deleting SSVM %s (%s)", d.name, d.reason)
        except ApiError as e:
            failures.append(f"delete {d.name}: {e.reason}")
    for s in plan.starts:
        try:
            await rt.api.patch(c.SSVM_PLURAL, ns, s.name, {"metadata": {"annotations": {POOL_RESTART_ANNOTATION: s.reason}},
                                                             "spec": {"desiredState": "Running"}})
            rt.wake(c.SSVM_KIND, ns, s.name)
            logger.info("starting SSVM %s from the stopped pool (%s)", s.name, s.reason)
        except ApiError as e:
            failures.append(f"start {s.name}: {e.reason}")
    for create in plan.creates:
        try:
            created = await rt.api.create(c.SSVM_PLURAL, ns, zone_ssvm_object(zone["metadata"], create.name, create.role))
        except ApiError as e:
            failures.append(f"create {create.name}: {e.reason}")
            post_events([ev.EventSpec(ev.SSVM_CREATE_FAILED, f"Creating SSVM {create.name} failed: {e.status} {e.reason}.", "Warning")],
                        None, zone_ref)
            continue
        if created is None:
            continue   # 409: another pass or operator made it; the name is the lock
        rt.pending_creates.setdefault((ns, name), {})[create.name] = (time.monotonic(), created)
        logger.info("created SSVM %s (%s, %s)", create.name, create.role, create.reason)
        ssvm_ref = object_ref(c.SSVM_KIND, ns, create.name, created["metadata"].get("uid"))
        post_events([ev.EventSpec(ev.SSVM_CREATED, f"SSVM {create.name} created for zone {name} ({create.role}, {create.reason}).")],
                    ssvm_ref, zone_ref)
    return failures


async def _write_status(rt: Runtime, zone: Mapping[str, Any], compute: Any) -> None:
    """Writes `compute(status)` with the object's resourceVersion; on a conflict, recomputes on a fresh read."""
    ns, name = zone["metadata"]["namespace"], zone["metadata"]["name"]
    current: Mapping[str, Any] | None = zone
    for _ in range(3):
        if current is None:
            return
        patch = compute(current.get("status"))
        if not patch:
            return
        try:
            await rt.api.patch_status(c.ZONE_PLURAL, ns, name, patch, current["metadata"].get("resourceVersion"))
            return
        except ApiError as e:
            if e.status != 409:
                raise
        current = await rt.api.get(c.ZONE_PLURAL, ns, name)


async def _mark_stores_found(rt: Runtime, ns: str, zone_name: str, stores: list[Mapping[str, Any]]) -> None:
    for store in stores:
        conds = (store.get("status") or {}).get("conditions") or []
        new = set_condition(conds, "ZoneFound", "True", "ZoneFound", f"Zone {zone_name} exists.", store["metadata"].get("generation"))
        if new != list(conds):
            try:
                await rt.api.patch_status(c.IMAGESTORE_PLURAL, ns, store["metadata"]["name"], {"conditions": new},
                                          store["metadata"].get("resourceVersion"))
            except ApiError:
                pass   # a conflict means a newer event follows, and with it another pass


async def reconcile_zone(rt: Runtime, zone: Mapping[str, Any], stores: list[Mapping[str, Any]], ssvms: list[Mapping[str, Any]],
                         logger: Any) -> list[str]:
    """One pass: readiness, capacity plan, its actions, status. Returns failures (for backoff)."""
    view = ZoneView.from_body(zone)
    if view.deleting:
        return []
    key = (view.namespace, view.name)
    spec = zone.get("spec") or {}
    ssvms = _with_pending(rt, key, ssvms)
    store_views = [StoreView.from_body(s) for s in stores]
    ssvm_views = [SSVMView.from_body(s) for s in ssvms]
    answer, error = await _readiness(rt, view, spec)
    readiness = evaluate_zone_readiness(view, store_views, answer, error)
    plan = plan_zone_capacity(view, store_views, ssvm_views, ready=readiness.ready)
    failures = await _carry_out(rt, zone, plan, logger) if not plan.empty else []
    rollout = rolling.plan(rt, view, spec, ssvms, ssvm_views, ready=readiness.ready)
    if not rollout.empty:
        failures += await rolling.carry_out(rt, zone, ssvms, rollout, logger)
    if rt.zone_generations.get(key) != view.generation:
        rt.zone_generations[key] = view.generation
        for s in ssvms:   # the zone's spec changed (enabled, offering...): every SSVM re-plans now
            rt.wake(c.SSVM_KIND, view.namespace, s["metadata"]["name"])
    await _mark_stores_found(rt, view.namespace, view.name, stores)
    await _write_status(rt, zone, lambda status: zone_status_patch(status, view, readiness, plan, ssvm_views,
                                                                   extra=(rollout.condition,)))
    _record_counts(view, plan, ssvm_views, readiness)
    return failures


def _record_counts(view: ZoneView, plan: CapacityPlan, ssvms: list[SSVMView], readiness: Any) -> None:
    by_state: dict[str, int] = {}
    for s in ssvms:
        if not s.deleting and s.state:
            by_state[s.state] = by_state.get(s.state, 0) + 1
    counts = plan.counts
    ready = zone_ready_condition(view, readiness, plan, ssvms).status == "True"
    metrics.set_zone_counts(view.namespace, view.name, desired=plan.desired, actual=counts.actual, by_state=by_state,
                            writable_image_stores=counts.writable_image_stores,
                            read_only_image_stores=counts.image_stores - counts.writable_image_stores, ready=ready)


async def zone_daemon(namespace: str, name: str, body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: Any,
                      stores_by_zone: kopf.Index, ssvms_by_zone: kopf.Index, **_: Any) -> None:
    rt: Runtime = memo.runtime
    attempt = 0
    while not stopped:
        rt.waker(KIND, namespace, name).clear()
        delay = rt.config.scan_interval
        try:
            zone = copy.deepcopy(dict(body))
            stores = [copy.deepcopy(s) for s in stores_by_zone.get((namespace, name), [])]
            ssvms = [copy.deepcopy(s) for s in ssvms_by_zone.get((namespace, name), [])]
            with metrics.observe_reconcile(KIND):
                failures = await reconcile_zone(rt, zone, stores, ssvms, logger)
            if failures:
                attempt += 1
                delay = backoff_delay(attempt, None, rt.max_backoff)
                logger.warning("zone %s: %s; retrying in %.1fs", name, "; ".join(failures), delay)
            else:
                attempt = 0
        except ApiError as e:
            attempt += 1
            delay = backoff_delay(attempt, None, rt.max_backoff)
            logger.warning("zone %s: API error %s %s; retrying in %.1fs", name, e.status, e.reason, delay)
        await rt.sleep(KIND, namespace, name, delay, stopped)


async def zone_deleted(namespace: str, name: str, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    """The finalizer: every SSVM of the zone (and so its VM) is destroyed before the zone goes."""
    rt: Runtime = memo.runtime
    try:
        mine = [s for s in await rt.api.list(c.SSVM_PLURAL, namespace) if (s.get("spec") or {}).get("zoneRef") == name]
        for s in mine:
            if not s["metadata"].get("deletionTimestamp"):
                await rt.api.delete(c.SSVM_PLURAL, namespace, s["metadata"]["name"])
    except ApiError as e:
        raise kopf.TemporaryError(f"listing or deleting the zone's SSVMs failed: {e.status} {e.reason}", delay=5) from None
    if mine:
        raise kopf.TemporaryError(f"waiting for {len(mine)} SSVM(s) and their VMs to be destroyed", delay=1)
    rt.forget(KIND, namespace, name)
    metrics.forget_zone(namespace, name)
    rt.readiness_cache.pop((namespace, name), None)
    rt.pending_creates.pop((namespace, name), None)
    rt.rollout_issued.pop((namespace, name), None)
    rt.rollout_done.pop((namespace, name), None)
    logger.info("zone %s: all SSVMs destroyed", name)


def register(registry: kopf.OperatorRegistry) -> None:
    g, v, p = c.GROUP, c.VERSION, c.ZONE_PLURAL
    kopf.index(g, v, p, id=ids.ZONES_INDEX, registry=registry)(index_zone)
    kopf.on.event(g, v, p, id=ids.ZONE_EVENT, registry=registry)(on_zone_event)
    kopf.daemon(g, v, p, id=ids.ZONE_RECONCILE, registry=registry, cancellation_timeout=5.0)(zone_daemon)
    kopf.on.delete(g, v, p, id=ids.ZONE_FINALIZER, registry=registry)(zone_deleted)
