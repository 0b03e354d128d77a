"""One pass of a zone: readiness, the capacity plan and the rolling update, carried out through the
kube layer and the backend, then the zone's status and its stores' `ZoneFound`.

SSVMs this process created or marked for replacement whose watch events have not reached the index
yet are counted through the unseen-writes record, so no pass acts twice on a lagging view.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Container, Mapping
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator import metrics
from ssvm_operator.backends.base import BackendError
from ssvm_operator.backends.registry import BackendRegistry
from ssvm_operator.controllers.zone.capacity import CapacityPlan, plan_zone_capacity
from ssvm_operator.controllers.zone.objects import zone_ssvm_object
from ssvm_operator.controllers.zone.readiness import evaluate_zone_readiness, store_conditions_patch, zone_ready_condition, zone_status_patch
from ssvm_operator.controllers.zone.rollout import RolloutPlan, plan_rollout
from ssvm_operator.kube import events as ev
from ssvm_operator.kube.client import ApiError
from ssvm_operator.kube.context import Kube
from ssvm_operator.kube.events import object_ref
from ssvm_operator.model.spec_hash import material_hash
from ssvm_operator.model.store_urls import duplicate_store_urls, url_unique_condition
from ssvm_operator.model.conditions import find_condition
from ssvm_operator.model.views import (POOL_RESTART_ANNOTATION, UPGRADING_ANNOTATION, CondSpec, SSVMView, StoreView, ZoneView,
                                       is_zone_failure)

KIND = c.ZONE_KIND
READINESS_TTL = 10.0   # seconds a backend's readiness answer is reused for an unchanged zone spec


class ZoneReconciler:
    def __init__(self, kube: Kube, backends: BackendRegistry) -> None:
        self.kube, self.backends = kube, backends
        self._readiness: dict[tuple[str, str], tuple[float, str, Any]] = {}
        self._generations: dict[tuple[str, str], int | None] = {}
        self._upgraded: dict[tuple[str, str], set[str]] = {}   # SSVMs whose SSVMUpgraded Event was posted
        self._foreign: dict[tuple[str, str], set[str]] = {}    # slot names a create found held by another zone's SSVM
        self.failures = ev.FailureEvents(is_zone_failure)

    def forget(self, namespace: str, name: str) -> None:
        for state in (self._readiness, self._generations, self._upgraded, self._foreign):
            state.pop((namespace, name), None)
        self.failures.forget((namespace, name))

    async def run(self, zone: Mapping[str, Any], stores: list[Mapping[str, Any]], indexed: list[Mapping[str, Any]],
                  logger: Any, held_elsewhere: Container[str] = ()) -> list[str]:
        """One pass; returns what failed (the loop backs off and retries). `held_elsewhere`: names other zones' SSVMs use."""
        view = ZoneView.from_body(zone)
        if view.deleting:
            return []
        key = (view.namespace, view.name)
        spec = zone.get("spec") or {}
        ssvms = self._known_ssvms(view, indexed)
        duplicates = duplicate_store_urls(stores)   # not counted, not mounted: URLUnique says why
        store_views = [StoreView.from_body(s) for s in stores if s["metadata"]["name"] not in duplicates]
        ssvm_views = [SSVMView.from_body(s) for s in ssvms]
        answer, error = await self._backend_readiness(view, spec)
        readiness = evaluate_zone_readiness(view, store_views, answer, error)
        plan = plan_zone_capacity(view, store_views, ssvm_views, ready=readiness.ready,
                                  held_elsewhere=_Either(held_elsewhere, self._foreign.get(key, set())))
        failures = await self._carry_out(zone, plan, logger) if not plan.empty else []
        hashes = {s["metadata"]["name"]: material_hash(spec, s.get("spec")) for s in ssvms}
        rollout = plan_rollout(view, ssvm_views, hashes, ready=readiness.ready)
        if not rollout.empty:
            failures += await self._roll(zone, ssvms, rollout, logger)
        if self._generations.get(key) != view.generation:
            self._generations[key] = view.generation
            for s in ssvms:   # the zone's spec changed (enabled, offering...): every SSVM re-plans now
                self.kube.wakeups.wake((c.SSVM_KIND, view.namespace, s["metadata"]["name"]))
        await self._mark_stores(view, stores, duplicates)
        self.failures.seen(key, find_condition((zone.get("status") or {}).get("conditions"), "Ready"))
        written = await self.kube.status.write(c.ZONE_PLURAL, zone, lambda status, _b: zone_status_patch(
            status, view, readiness, plan, ssvm_views, extra=(rollout.condition,)))
        if "conditions" in written:
            self.kube.events.post(self.failures.changed(key, view.name, find_condition(written["conditions"], "Ready")),
                                  object_ref(KIND, view.namespace, view.name, zone["metadata"].get("uid")), None)
        _record_counts(view, plan, ssvm_views, readiness)
        return failures

    def _known_ssvms(self, zone: ZoneView, indexed: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The index's SSVMs, each as our last write left it if the index lags, plus those we created that it lacks."""
        unseen = self.kube.unseen
        known = [unseen.freshest(c.SSVM_KIND, zone.namespace, b["metadata"]["name"], dict(b)) for b in indexed]
        return known + unseen.created_not_listed(c.SSVM_KIND, zone.namespace, zone.name, (b["metadata"]["name"] for b in indexed))

    async def _backend_readiness(self, zone: ZoneView, spec: Mapping[str, Any]) -> tuple[Any, tuple[str, str] | None]:
        key = (zone.namespace, zone.name)
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
        cached = self._readiness.get(key)
        if cached and cached[1] == digest and time.monotonic() - cached[0] < READINESS_TTL:
            return cached[2]
        try:
            result: tuple[Any, tuple[str, str] | None] = (
                await self.backends.for_zone(spec).readiness(zone.namespace, zone.name, spec), None)
        except BackendError as e:
            result = (None, (e.reason, e.message))
        self._readiness[key] = (time.monotonic(), digest, result)
        return result

    async def _carry_out(self, zone: Mapping[str, Any], plan: CapacityPlan, logger: Any) -> list[str]:
        """Creates, starts and destroys SSVM objects; returns what failed (the next pass retries it)."""
        ns, name = zone["metadata"]["namespace"], zone["metadata"]["name"]
        client, events = self.kube.client, self.kube.events
        zone_ref = object_ref(KIND, ns, name, zone["metadata"].get("uid"))
        failures: list[str] = []
        for d in plan.destroys:
            try:
                await client.delete(c.SSVM_PLURAL, ns, d.name)
                logger.info("deleting SSVM %s (%s)", d.name, d.reason)
            except ApiError as e:
                failures.append(f"delete {d.name}: {e.reason}")
        for s in plan.starts:
            try:
                response = await client.patch(c.SSVM_PLURAL, ns, s.name, {
                    "metadata": {"annotations": {POOL_RESTART_ANNOTATION: s.reason}}, "spec": {"desiredState": "Running"}})
            except ApiError as e:
                failures.append(f"start {s.name}: {e.reason}")
                continue
            self.kube.unseen.record(c.SSVM_KIND, ns, s.name, (), response)
            self.kube.wakeups.wake((c.SSVM_KIND, ns, s.name))
            logger.info("starting SSVM %s from the stopped pool (%s)", s.name, s.reason)
        for create in plan.creates:
            try:
                created = await client.create(c.SSVM_PLURAL, ns, zone_ssvm_object(zone["metadata"], create.name, create.role))
            except ApiError as e:
                failures.append(f"create {create.name}: {e.reason}")
                events.post([ev.EventSpec(ev.SSVM_CREATE_FAILED, f"Creating SSVM {create.name} failed: {e.status} {e.reason}.",
                                          "Warning")], None, zone_ref)
                continue
            if created is None:   # 409: another pass or operator made it (the name is the lock), or a user's SSVM holds it
                failures += await self._name_conflict(zone, create.name, logger)
                continue
            self.kube.unseen.record(c.SSVM_KIND, ns, create.name, (), created, created_for=name)
            logger.info("created SSVM %s (%s, %s)", create.name, create.role, create.reason)
            # on the zone, the actor: the SSVM's own Events begin with what happens to it
            events.post([ev.EventSpec(ev.SSVM_CREATED, f"SSVM {create.name} created for zone {name} ({create.role}, {create.reason}).")],
                        zone_ref, None)
        return failures

    async def _name_conflict(self, zone: Mapping[str, Any], name: str, logger: Any) -> list[str]:
        """A create lost to an existing SSVM: ours (nothing to do) or another zone's, whose name the next pass skips."""
        ns, zone_name = zone["metadata"]["namespace"], zone["metadata"]["name"]
        try:
            holder = await self.kube.client.get(c.SSVM_PLURAL, ns, name)
        except ApiError as e:
            return [f"read {name}: {e.reason}"]
        other = ((holder or {}).get("spec") or {}).get("zoneRef")
        if holder is None or other == zone_name:
            return []
        self._foreign.setdefault((ns, zone_name), set()).add(name)
        logger.info("SSVM name %s is held by an SSVM of zone %s; taking another slot", name, other)
        self.kube.events.post([ev.EventSpec(ev.SSVM_NAME_TAKEN, f"{name} belongs to zone {other}; zone {zone_name} uses another slot.",
                                            "Warning")], None, object_ref(KIND, ns, zone_name, zone["metadata"].get("uid")))
        self.kube.wakeups.wake((KIND, ns, zone_name))
        return []

    async def _roll(self, zone: Mapping[str, Any], ssvms: list[Mapping[str, Any]], rollout: RolloutPlan, logger: Any) -> list[str]:
        """The rolling update carried out: the upgrading mark and request on the one SSVM chosen, the mark's removal once done."""
        ns, name = zone["metadata"]["namespace"], zone["metadata"]["name"]
        zone_ref = object_ref(KIND, ns, name, zone["metadata"].get("uid"))
        by_name = {s["metadata"]["name"]: s for s in ssvms}
        done = self._upgraded.setdefault((ns, name), set())
        failures: list[str] = []
        for ssvm in rollout.finished:
            try:
                await self._patch_ssvm(by_name.get(ssvm), ns, ssvm, {"metadata": {"annotations": {UPGRADING_ANNOTATION: None}}})
            except ApiError as e:
                failures.append(f"finish upgrade of {ssvm}: {e.reason}")
                continue
            if ssvm not in done:   # the index may show the annotation once more: one Event per replacement
                done.add(ssvm)
                logger.info("rolling update: %s replaced and ready", ssvm)
                self.kube.events.post([ev.EventSpec(ev.SSVM_UPGRADED, f"{ssvm} runs the zone's current template and offering.")],
                                      _ssvm_ref(by_name.get(ssvm), ns, ssvm), zone_ref)
        r = rollout.replace
        if r is None:
            return failures
        field = "recreateRequest" if r.action == "recreate" else "rebootRequest"
        try:
            await self._patch_ssvm(by_name.get(r.name), ns, r.name, {"metadata": {"annotations": {UPGRADING_ANNOTATION: r.token}},
                                                                    "spec": {field: r.token}})
        except ApiError as e:
            return failures + [f"upgrade {r.name}: {e.reason}"]
        done.discard(r.name)
        self.kube.wakeups.wake((c.SSVM_KIND, ns, r.name))
        logger.info("rolling update: %s %s (%s)", r.action, r.name, r.reason)
        self.kube.events.post([ev.EventSpec(ev.SSVM_UPGRADING, f"{r.name}: {r.reason}; its VM is {r.action}d ({field} {r.token}).")],
                              _ssvm_ref(by_name.get(r.name), ns, r.name), zone_ref)
        return failures

    async def _patch_ssvm(self, known: Mapping[str, Any] | None, ns: str, name: str, patch: dict[str, Any]) -> None:
        response = await self.kube.client.patch(c.SSVM_PLURAL, ns, name, patch)
        self.kube.unseen.record(c.SSVM_KIND, ns, name, ((known or {}).get("metadata", {}).get("resourceVersion"),), response)

    async def _mark_stores(self, zone: ZoneView, stores: list[Mapping[str, Any]], duplicates: Mapping[str, str]) -> None:
        """The conditions this controller owns on each store: ZoneFound and URLUnique."""
        found = CondSpec("ZoneFound", "True", "ZoneFound", f"Zone {zone.name} exists.")
        for store in stores:
            conds = (found, url_unique_condition(store["metadata"]["name"], zone.name, duplicates))
            if not store_conditions_patch(store.get("status") or {}, store, *conds):
                continue   # the index already shows it: no write
            try:
                await self.kube.status.write(c.IMAGESTORE_PLURAL, {**store, "metadata": {**store["metadata"], "namespace": zone.namespace}},
                                             lambda st, b, conds=conds: store_conditions_patch(st, b, *conds))
            except ApiError:
                pass   # the store's next event brings another pass


class _Either:
    """A name held by either container."""

    def __init__(self, *containers: Container[str]) -> None:
        self.containers = containers

    def __contains__(self, name: object) -> bool:
        return any(name in c for c in self.containers)


def _ssvm_ref(body: Mapping[str, Any] | None, ns: str, name: str) -> dict[str, Any]:
    return object_ref(c.SSVM_KIND, ns, name, (body or {}).get("metadata", {}).get("uid"))


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
