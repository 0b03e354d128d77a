"""The guest worker's view of Kubernetes in the operator: kopf's indexes (handed over by each handler
call) for zones, stores, SSVM names and addresses; the kube layer for reads, status and Events."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator.controllers import ids
from ssvm_operator.kube.context import Kube
from ssvm_operator.kube.events import EventSpec, object_ref, ref_of
from ssvm_operator.model.snapshot import json_copy
from ssvm_operator.model.store_urls import duplicate_store_urls

MESH_KEY = "all"


class KubeCluster:
    def __init__(self, kube: Kube, request_recreate: Callable[[Mapping[str, Any], str], Any]) -> None:
        self.kube = kube
        self._request_recreate = request_recreate
        self.indexes: dict[str, Any] = {}
        self.bodies: dict[tuple[str, str], Any] = {}

    def use(self, kwargs: Mapping[str, Any]) -> None:
        for name in (ids.ZONES_INDEX, ids.STORES_INDEX, ids.SSVMS_INDEX, ids.MESH_INDEX):
            if name in kwargs:
                self.indexes[name] = kwargs[name]

    def _index(self, name: str, key: Any) -> list[Any]:
        index = self.indexes.get(name)
        return list(index.get(key, [])) if index is not None else []

    def addresses(self) -> list[Any]:
        return self._index(ids.MESH_INDEX, MESH_KEY)

    def zone(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return next(iter(self._index(ids.ZONES_INDEX, (namespace, name))), None)

    def stores(self, namespace: str, zone: str) -> list[Mapping[str, Any]]:
        """The zone's stores the guests mount: a second store naming an export already in use is left out."""
        stores = self._index(ids.STORES_INDEX, (namespace, zone))
        duplicates = duplicate_store_urls(stores)
        return sorted((s for s in stores if s["metadata"]["name"] not in duplicates), key=lambda s: s["metadata"]["name"])

    def ssvm_names(self, namespace: str, zone: str) -> set[str] | None:
        if ids.SSVMS_INDEX not in self.indexes:
            return None
        return {b["metadata"]["name"] for b in self._index(ids.SSVMS_INDEX, (namespace, zone))}

    async def get_ssvm(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        body = self.bodies.get((namespace, name))
        if body is None:
            return await self.kube.client.get(c.SSVM_PLURAL, namespace, name)
        return self.kube.unseen.freshest(c.SSVM_KIND, namespace, name, json_copy(dict(body)))

    async def list_ssvms(self, namespace: str) -> list[Mapping[str, Any]]:
        return list(await self.kube.client.list(c.SSVM_PLURAL, namespace))

    async def update_ssvm_status(self, namespace: str, name: str, compute: Callable[..., dict]) -> None:
        await self.kube.status.write(c.SSVM_PLURAL, await self.get_ssvm(namespace, name), compute)

    async def update_store_status(self, namespace: str, name: str, compute: Callable[..., dict]) -> None:
        await self.kube.status.write_named(c.IMAGESTORE_PLURAL, namespace, name, compute)

    async def request_recreate(self, namespace: str, name: str, token: str) -> None:
        known = await self.get_ssvm(namespace, name)
        await self._request_recreate(known or {"metadata": {"namespace": namespace, "name": name}}, token)

    async def write_configmap(self, namespace: str, body: dict[str, Any]) -> None:
        await self.kube.client.apply_configmap(namespace, body)

    def post_event(self, ssvm: Mapping[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        meta = ssvm["metadata"]
        zone = self.zone(meta["namespace"], (ssvm.get("spec") or {}).get("zoneRef", ""))
        zone_ref = object_ref(c.ZONE_KIND, meta["namespace"], zone["metadata"]["name"], zone["metadata"].get("uid")) if zone else None
        self.kube.events.post([EventSpec(reason, message, type_)], ref_of(ssvm, c.SSVM_KIND), zone_ref)
