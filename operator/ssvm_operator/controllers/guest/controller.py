"""The guest controller (kopf): one worker per SSVM pushes the guest actions and runs health checks;
an index of every SSVM's address drives the coalesced firewall mesh; store and zone events wake the
workers of the zone's SSVMs. It owns StoresMounted, FirewallProgrammed, Healthy, status.actions,
status.health and the ImageStores' mounts, Mounted and Ready.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ssvm_operator import constants as c
from ssvm_operator.controllers import ids
from ssvm_operator.controllers.guest.actions import SSVMAddress
from ssvm_operator.controllers.guest.cluster import MESH_KEY, KubeCluster
from ssvm_operator.controllers.guest.mesh import address_of
from ssvm_operator.controllers.guest.status import store_status_patch
from ssvm_operator.controllers.guest.worker import GuestOps
from ssvm_operator.kube.client import ApiError


async def index_mesh(body: kopf.Body, **_: Any) -> dict[str, Any]:
    return {MESH_KEY: address_of(body)}


class GuestController:
    def __init__(self, ops: GuestOps, cluster: KubeCluster) -> None:
        self.ops, self.cluster = ops, cluster

    def _wake_zone(self, namespace: str, zone: str, kwargs: Mapping[str, Any]) -> None:
        for body in (kwargs.get(ids.SSVMS_INDEX) or {}).get((namespace, zone), []):
            self.ops.wake(namespace, body["metadata"]["name"])

    async def on_ssvm_event(self, type: str | None, namespace: str, name: str, body: kopf.Body, **kwargs: Any) -> None:
        self.cluster.use(kwargs)
        if not namespace:
            return
        gone = type == "DELETED"
        self.ops.mesh.observe(SSVMAddress(namespace, name, None, None) if gone else address_of(body))
        if gone:
            self.ops.forget(namespace, name)
            self.cluster.bodies.pop((namespace, name), None)
            try:
                await self.ops.prune_store_mounts(namespace, (body.get("spec") or {}).get("zoneRef", ""), name)
            except ApiError:
                pass   # the next result written to the store prunes it too
            return
        self.ops.seen(namespace, name, body)

    async def on_zone_event(self, namespace: str, name: str, **kwargs: Any) -> None:
        self.cluster.use(kwargs)
        if namespace:
            self._wake_zone(namespace, name, kwargs)

    async def on_store_event(self, type: str | None, namespace: str, name: str, body: kopf.Body, **kwargs: Any) -> None:
        self.cluster.use(kwargs)
        zone = (body.get("spec") or {}).get("zoneRef")
        if namespace and zone:
            self._wake_zone(namespace, zone, kwargs)
        if not namespace or type == "DELETED":
            return
        # Mounted and Ready follow from the mounts and ZoneFound: a store no SSVM has set up yet, or whose zone
        # went, says so instead of keeping the initial "not evaluated" or a stale text (idempotent: no write loop).
        status, generation = body.get("status") or {}, body.get("metadata", {}).get("generation")
        if store_status_patch(status, list(status.get("mounts") or []), generation):
            try:
                await self.cluster.update_store_status(namespace, name, lambda st, b: store_status_patch(
                    st, list(st.get("mounts") or []), b["metadata"].get("generation")))
            except ApiError:
                pass   # the store's next event brings this handler again

    async def guest_worker(self, namespace: str, name: str, body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        self.cluster.use(kwargs)
        self.cluster.bodies[(namespace, name)] = body
        await self.ops.run_worker(namespace, name, stopped)

    def register(self, registry: kopf.OperatorRegistry) -> None:
        g, v = c.GROUP, c.VERSION
        kopf.index(g, v, c.SSVM_PLURAL, id=ids.MESH_INDEX, registry=registry)(index_mesh)
        kopf.on.event(g, v, c.SSVM_PLURAL, id=ids.GUEST_SSVM_EVENT, registry=registry)(self.on_ssvm_event)
        kopf.on.event(g, v, c.ZONE_PLURAL, id=ids.GUEST_ZONE_EVENT, registry=registry)(self.on_zone_event)
        kopf.on.event(g, v, c.IMAGESTORE_PLURAL, id=ids.GUEST_STORE_EVENT, registry=registry)(self.on_store_event)
        kopf.daemon(g, v, c.SSVM_PLURAL, id=ids.GUEST_WORKER, registry=registry, cancellation_backoff=ids.DAEMON_EXIT_GRACE,
                    cancellation_timeout=ids.DAEMON_CANCEL_TIMEOUT)(self.guest_worker)
