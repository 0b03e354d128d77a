"""An in-memory `Cluster` for unit tests and the bench: objects as dicts, status merged like a server
would, events and recreate requests recorded. It plays the lifecycle's part too (`bring_up`)."""
from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ssvm_operator.model.vm import NicInfo, ObservedVM, VMPhase
from ssvm_operator.controllers.guest.mesh import address_of

Key = tuple[str, str]


class MemoryCluster:
    def __init__(self) -> None:
        self.zones: dict[Key, dict[str, Any]] = {}
        self.stores_: dict[Key, dict[str, Any]] = {}
        self.ssvms: dict[Key, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.recreates: list[tuple[str, str, str]] = []
        self.status_writes = 0
        self.configmaps: dict[Key, dict[str, Any]] = {}
        self.listeners: list[Callable[[str, str], None]] = []   # told of every SSVM change (the watch)
        self._rv = itertools.count(1)
        self._instances = itertools.count(1)

    # --- building the world ---
    def _meta(self, namespace: str, name: str) -> dict[str, Any]:
        return {"namespace": namespace, "name": name, "uid": str(uuid.uuid4()), "generation": 1,
                "resourceVersion": str(next(self._rv))}

    def add_zone(self, namespace: str, name: str, **secondary: Any) -> dict[str, Any]:
        body = {"apiVersion": "ssvm.io/v1alpha1", "kind": "Zone", "metadata": self._meta(namespace, name),
                "spec": {"secondaryStorage": secondary}}
        self.zones[(namespace, name)] = body
        return body

    def add_store(self, namespace: str, name: str, zone: str, url: str | None = None, **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": "ssvm.io/v1alpha1", "kind": "ImageStore", "metadata": self._meta(namespace, name),
                "spec": {"zoneRef": zone, "url": url or f"nfs://nfs.example/export/{name}", "protocol": "nfs", **spec},
                "status": {"conditions": []}}
        self.stores_[(namespace, name)] = body
        return body

    def add_ssvm(self, namespace: str, name: str, zone: str, public_ip: str, control_ip: str | None = None) -> dict[str, Any]:
        body = {"apiVersion": "ssvm.io/v1alpha1", "kind": "SecondaryStorageVM", "metadata": self._meta(namespace, name),
                "spec": {"zoneRef": zone, "role": "templateProcessor", "desiredState": "Running"},
                "status": {"state": "Starting", "conditions": [],
                           "nics": {"public": {"ip": public_ip}, "control": {"ip": control_ip or public_ip}}}}
        self.ssvms[(namespace, name)] = body
        self._changed(namespace, name)
        return body

    def set_state(self, namespace: str, name: str, state: str) -> None:
        self.ssvms[(namespace, name)]["status"]["state"] = state
        self._bump(self.ssvms[(namespace, name)])
        self._changed(namespace, name)

    def observed(self, namespace: str, name: str, instance: str | None = None) -> ObservedVM:
        nics = self.ssvms[(namespace, name)]["status"]["nics"]
        return ObservedVM(VMPhase.RUNNING, nics={t: NicInfo(ip=n["ip"]) for t, n in nics.items()},
                          instance_id=instance or f"vmi-{next(self._instances)}", backend_name=name)

    async def bring_up(self, gate: Any, namespace: str, name: str, instance: str | None = None) -> Any:
        """What the SSVM controller does when the VM runs: pass the start gate, then write Running."""
        body = self.ssvms[(namespace, name)]
        zone = self.zones[(namespace, body["spec"]["zoneRef"])]
        await gate.keys.host_key(body)   # what the VM request did when the VM was made
        result = await gate.check(ssvm=copy.deepcopy(body), zone=zone, observed=self.observed(namespace, name, instance))
        if result.passed:
            self.set_state(namespace, name, "Running")
        return result

    def addresses(self) -> list[Any]:
        return [address_of(b) for b in self.ssvms.values()]

    def _bump(self, body: dict[str, Any]) -> None:
        body["metadata"]["resourceVersion"] = str(next(self._rv))

    def _changed(self, namespace: str, name: str) -> None:
        for listener in list(self.listeners):
            listener(namespace, name)

    # --- Cluster ---
    def zone(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.zones.get((namespace, name))

    def stores(self, namespace: str, zone: str) -> list[Mapping[str, Any]]:
        return [s for (ns, _), s in sorted(self.stores_.items()) if ns == namespace and s["spec"]["zoneRef"] == zone]

    def ssvm_names(self, namespace: str, zone: str) -> set[str] | None:
        return {n for (ns, n), s in self.ssvms.items() if ns == namespace and s["spec"]["zoneRef"] == zone}

    async def get_ssvm(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        found = self.ssvms.get((namespace, name))
        return copy.deepcopy(found) if found else None

    async def list_ssvms(self, namespace: str) -> list[Mapping[str, Any]]:
        return [copy.deepcopy(b) for (ns, _), b in sorted(self.ssvms.items()) if ns == namespace]

    def _apply_status(self, body: dict[str, Any] | None, compute: Callable[..., dict]) -> bool:
        """Writes `compute`'s patch into `body`'s status as the API's /status merge would; whether it wrote."""
        if body is None:
            return False
        patch = compute(copy.deepcopy(body.get("status") or {}), copy.deepcopy(body))
        if patch:
            body.setdefault("status", {}).update(copy.deepcopy(patch))
            self._bump(body)
        return bool(patch)

    async def update_ssvm_status(self, namespace: str, name: str, compute: Callable[..., dict]) -> None:
        if self._apply_status(self.ssvms.get((namespace, name)), compute):
            self.status_writes += 1
            self._changed(namespace, name)

    async def update_store_status(self, namespace: str, name: str, compute: Callable[..., dict]) -> None:
        self._apply_status(self.stores_.get((namespace, name)), compute)

    async def request_recreate(self, namespace: str, name: str, token: str) -> None:
        self.recreates.append((namespace, name, token))
        self.ssvms[(namespace, name)]["spec"]["recreateRequest"] = token

    async def write_configmap(self, namespace: str, body: dict[str, Any]) -> None:
        self.configmaps[(namespace, body["metadata"]["name"])] = body

    def post_event(self, ssvm: Mapping[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        self.events.append({"object": ssvm["metadata"]["name"], "reason": reason, "message": message, "type": type_})
