"""The zone controller (kopf): an index of zones and of stores per zone, one reconcile loop per zone,
the zone's finalizer, and the ImageStore's `ZoneFound` condition.

The loop wakes on any event of the zone, its stores or its SSVMs, and otherwise every scan interval
as the safety scan; a pass that finds nothing changed writes nothing. Deleting a zone deletes its
SSVMs (each one's finalizer destroys its VM) before it goes.
"""
from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf

from ssvm_operator import constants as c
from ssvm_operator import metrics
from ssvm_operator.backends.registry import BackendRegistry
from ssvm_operator.controllers import ids
from ssvm_operator.controllers.zone.readiness import store_conditions_patch
from ssvm_operator.controllers.zone.reconcile import ZoneReconciler
from ssvm_operator.kube.client import ApiError
from ssvm_operator.kube import events as ev
from ssvm_operator.kube.context import Kube
from ssvm_operator.kube.events import object_ref
from ssvm_operator.kube.wakeups import MAX_BACKOFF, backoff_delay
from ssvm_operator.model.conditions import find_condition
from ssvm_operator.model.snapshot import json_copy
from ssvm_operator.model.views import CondSpec, awaits_kopf_finalizer
from ssvm_operator.settings import OperatorConfig

KIND = c.ZONE_KIND
FINALIZER_WAIT = 60.0   # seconds the zone's finalizer waits in place for its SSVMs before kopf retries it


async def index_zone(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    meta = body.get("metadata", {})
    return {(namespace, name): {"metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "generation", "deletionTimestamp")},
                                "spec": copy.deepcopy(dict(body.get("spec") or {}))}}


async def index_store(namespace: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    meta, spec = body.get("metadata", {}), body.get("spec") or {}
    return {(namespace, spec.get("zoneRef", "")): {
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "generation", "resourceVersion", "creationTimestamp",
                                                 "deletionTimestamp")},
        "spec": copy.deepcopy(dict(spec)),
        "status": {"conditions": copy.deepcopy(list((body.get("status") or {}).get("conditions") or []))},
    }}


async def index_ssvm_zone(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], str]:
    return {(namespace, name): (body.get("spec") or {}).get("zoneRef", "")}


class HeldElsewhere:
    """`name in held`: an SSVM of that name in the namespace belongs to another zone (or to none)."""

    def __init__(self, zone_by_name: kopf.Index, namespace: str, zone: str) -> None:
        self.index, self.namespace, self.zone = zone_by_name, namespace, zone

    def __contains__(self, name: object) -> bool:
        return any(z != self.zone for z in self.index.get((self.namespace, name), ()))


class ZoneController:
    def __init__(self, kube: Kube, backends: BackendRegistry, config: OperatorConfig) -> None:
        self.kube, self.config = kube, config
        self.reconciler = ZoneReconciler(kube, backends)

    async def on_zone_event(self, namespace: str, name: str, **_: Any) -> None:
        if namespace:
            self.kube.wakeups.wake((KIND, namespace, name))

    async def on_store_event(self, type: str | None, namespace: str, name: str, body: kopf.Body, zones_by_name: kopf.Index,
                             **_: Any) -> None:
        """Wakes the store's zone; marks `ZoneFound=False` when the zone does not exist (its loop sets True)."""
        zone = (body.get("spec") or {}).get("zoneRef")
        if not zone or not namespace:
            return
        self.kube.wakeups.wake((KIND, namespace, zone))
        if type == "DELETED":
            metrics.set_store_mounted(namespace, zone, name, None)
            for z in zones_by_name.get((namespace, zone), []):
                self.kube.events.post([ev.EventSpec(ev.IMAGESTORE_REMOVED, f"ImageStore {name} removed: the zone's SSVMs unmount it.")],
                                      object_ref(KIND, namespace, zone, z["metadata"].get("uid")), None)
            return
        if (namespace, zone) in zones_by_name:
            return
        found = find_condition((body.get("status") or {}).get("conditions"), "ZoneFound")
        if found and found.get("reason") == "ZoneNotFound":
            return
        try:
            await self.kube.status.write(c.IMAGESTORE_PLURAL, dict(body), lambda st, b: store_conditions_patch(
                st, b, CondSpec("ZoneFound", "False", "ZoneNotFound", f"No Zone {zone} in namespace {namespace}.")))
        except ApiError:
            pass   # the next event of the store brings this handler again

    async def zone_daemon(self, namespace: str, name: str, body: kopf.Body, stopped: kopf.DaemonStopped, logger: Any,
                          stores_by_zone: kopf.Index, ssvms_by_zone: kopf.Index, ssvm_zone_by_name: kopf.Index, **_: Any) -> None:
        key = (KIND, namespace, name)
        attempt = 0
        while not stopped:
            self.kube.wakeups.clear(key)
            delay = self.config.scan_interval
            if awaits_kopf_finalizer(body.get("metadata", {})):   # its event wakes this loop
                await self.kube.wakeups.sleep(key, delay, stopped)
                continue
            try:
                zone = json_copy(dict(body))
                stores = [json_copy(s) for s in stores_by_zone.get((namespace, name), [])]
                ssvms = [json_copy(s) for s in ssvms_by_zone.get((namespace, name), [])]
                with metrics.observe_reconcile(KIND):
                    failures = await self.reconciler.run(zone, stores, ssvms, logger, HeldElsewhere(ssvm_zone_by_name, namespace, name))
                if failures:
                    attempt += 1
                    delay = backoff_delay(attempt, None, MAX_BACKOFF)
                    logger.warning("zone %s: %s; retrying in %.1fs", name, "; ".join(failures), delay)
                else:
                    attempt = 0
            except ApiError as e:
                attempt += 1
                delay = backoff_delay(attempt, None, MAX_BACKOFF)
                logger.warning("zone %s: API error %s %s; retrying in %.1fs", name, e.status, e.reason, delay)
            await self.kube.wakeups.sleep(key, delay, stopped)

    async def zone_deleted(self, namespace: str, name: str, logger: Any, stores_by_zone: kopf.Index, **_: Any) -> None:
        """The finalizer: every SSVM of the zone (and so its VM) is destroyed before the zone goes; its stores
        then say ZoneFound=False."""
        client = self.kube.client
        deadline = asyncio.get_running_loop().time() + FINALIZER_WAIT
        told = False
        while True:
            try:
                mine = [s for s in await client.list(c.SSVM_PLURAL, namespace) if (s.get("spec") or {}).get("zoneRef") == name]
                for s in mine:
                    if not s["metadata"].get("deletionTimestamp"):
                        await client.delete(c.SSVM_PLURAL, namespace, s["metadata"]["name"])
            except ApiError as e:
                raise kopf.TemporaryError(f"listing or deleting the zone's SSVMs failed: {e.status} {e.reason}", delay=5) from None
            if not mine:
                break
            if asyncio.get_running_loop().time() > deadline:   # unusually long: kopf retries and says so
                raise kopf.TemporaryError(f"still waiting for {len(mine)} SSVM(s) and their VMs to be destroyed", delay=5)
            if not told:   # waiting is the normal course of a deletion: INFO, once
                logger.info("zone %s: waiting for %d SSVM(s) and their VMs to be destroyed", name, len(mine))
                told = True
            await asyncio.sleep(1.0)
        for store in stores_by_zone.get((namespace, name), []):
            try:
                await self.kube.status.write_named(c.IMAGESTORE_PLURAL, namespace, store["metadata"]["name"], lambda st, b: store_conditions_patch(
                    st, b, CondSpec("ZoneFound", "False", "ZoneNotFound", f"Zone {name} was deleted; no Zone {name} in namespace {namespace}.")))
            except ApiError as e:
                logger.info("zone %s: marking store %s ZoneNotFound failed: %s", name, store["metadata"]["name"], e.reason)
        self.kube.wakeups.forget((KIND, namespace, name))
        self.kube.unseen.forget_owner(c.SSVM_KIND, namespace, name)
        self.reconciler.forget(namespace, name)
        metrics.forget_zone(namespace, name)
        logger.info("zone %s: all SSVMs destroyed", name)

    def register(self, registry: kopf.OperatorRegistry) -> None:
        g, v = c.GROUP, c.VERSION
        kopf.index(g, v, c.ZONE_PLURAL, id=ids.ZONES_INDEX, registry=registry)(index_zone)
        kopf.index(g, v, c.IMAGESTORE_PLURAL, id=ids.STORES_INDEX, registry=registry)(index_store)
        kopf.index(g, v, c.SSVM_PLURAL, id=ids.SSVM_ZONE_INDEX, registry=registry)(index_ssvm_zone)
        kopf.on.event(g, v, c.ZONE_PLURAL, id=ids.ZONE_EVENT, registry=registry)(self.on_zone_event)
        kopf.on.event(g, v, c.IMAGESTORE_PLURAL, id=ids.STORE_EVENT, registry=registry)(self.on_store_event)
        kopf.daemon(g, v, c.ZONE_PLURAL, id=ids.ZONE_RECONCILE, registry=registry, cancellation_backoff=ids.DAEMON_EXIT_GRACE,
                    cancellation_timeout=ids.DAEMON_CANCEL_TIMEOUT)(self.zone_daemon)
        kopf.on.delete(g, v, c.ZONE_PLURAL, id=ids.ZONE_FINALIZER, registry=registry)(self.zone_deleted)

