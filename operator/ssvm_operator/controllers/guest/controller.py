"""Guest operations in the operator (issue 6): the SSH start gate and key-filling VM request go into
the shared Runtime; one guest worker per SSVM pushes the guest actions and runs health checks; an
index of every SSVM's address drives the coalesced firewall mesh.

Off for the in-memory backend (its VMs have no guests), unless a test hands a channel in the memo
(`memo.guest_channel`); `memo.guest_settings` overrides GuestSettings.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from ssvm_operator import constants as c
from ssvm_operator.backends.base import BackendError, VMBackend
from ssvm_operator.model.vm import ObservedVM, VMRequest
from ssvm_operator.kube import events as ev
from ssvm_operator.controllers.ssvm.lifecycle import GateResult
from ssvm_operator.ssh.channel import SSHGuestChannel, Timeouts
from ssvm_operator.controllers.guest.worker import GuestOps, GuestSettings
from ssvm_operator.controllers.guest.mesh import Mesh, address_of
from ssvm_operator.controllers.keys.secrets import KeyMaterialError, KeyStore, KubeSecretsApi, OperatorKey
from ssvm_operator.kube.client import ApiError
from ssvm_operator.controllers.runtime import Runtime, default_vm_request, object_ref, post_events

KIND = c.SSVM_KIND
STARTUP = "ssvm-startup-guest"
MESH_INDEX = "ssvm_mesh"          # also the kwarg name handlers receive it under
SSVM_EVENT = "ssvm-guest-wake"
ZONE_EVENT = "zone-guest-wake"
STORE_EVENT = "imagestore-guest-wake"
WORKER = "ssvm-guest-ops"
MESH_KEY = "all"


class KubeCluster:
    """guestops' Cluster on the operator's API client and kopf's indexes (handed over by each handler call)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.indexes: dict[str, Any] = {}
        self.bodies: dict[tuple[str, str], Any] = {}

    def use(self, kwargs: Mapping[str, Any]) -> None:
        for name in ("zones_by_name", "stores_by_zone", "ssvms_by_zone", MESH_INDEX):
            if name in kwargs:
                self.indexes[name] = kwargs[name]

    def _index(self, name: str, key: Any) -> list[Any]:
        index = self.indexes.get(name)
        return list(index.get(key, [])) if index is not None else []

    def addresses(self) -> list[Any]:
        return self._index(MESH_INDEX, MESH_KEY)

    def zone(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return next(iter(self._index("zones_by_name", (namespace, name))), None)

    def stores(self, namespace: str, zone: str) -> list[Mapping[str, Any]]:
        return sorted(self._index("stores_by_zone", (namespace, zone)), key=lambda s: s["metadata"]["name"])

    def ssvm_names(self, namespace: str, zone: str) -> set[str] | None:
        if "ssvms_by_zone" not in self.indexes:
            return None
        return {b["metadata"]["name"] for b in self._index("ssvms_by_zone", (namespace, zone))}

    async def get_ssvm(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        body = self.bodies.get((namespace, name))
        if body is None:
            return await self.rt.api.get(c.SSVM_PLURAL, namespace, name)
        return self.rt.freshest(KIND, namespace, name, copy.deepcopy(dict(body)))

    async def list_ssvms(self, namespace: str) -> list[Mapping[str, Any]]:
        return list(await self.rt.api.list(c.SSVM_PLURAL, namespace))

    async def _read(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        if plural == c.IMAGESTORE_PLURAL:   # list, not get: the chart grants the operator exactly list/watch/patch on stores
            return next((s for s in await self.rt.api.list(plural, namespace) if s["metadata"]["name"] == name), None)
        return await self.rt.api.get(plural, namespace, name)

    async def _update(self, plural: str, namespace: str, name: str, current: Mapping[str, Any] | None,
                      compute: Callable[..., dict]) -> None:
        for _ in range(4):
            if current is None or current["metadata"].get("deletionTimestamp"):
                return
            patch = compute(copy.deepcopy(current.get("status") or {}), current)
            if not patch:
                return
            before = current["metadata"].get("resourceVersion")
            try:
                response = await self.rt.api.patch_status(plural, namespace, name, patch, before)
                if plural == c.SSVM_PLURAL:
                    self.rt.remember_write(KIND, namespace, name, (before,), response)
                return
            except ApiError as e:
                if e.status != 409:
                    raise
            current = await self._read(plural, namespace, name)

    async def update_ssvm_status(self, namespace: str, name: str, compute: Callable[..., dict]) -> None:
        await self._update(c.SSVM_PLURAL, namespace, name, await self.get_ssvm(namespace, name), compute)

    async def update_store_status(self, namespace: str, name: str, compute: Callable[..., dict]) -> None:
        await self._update(c.IMAGESTORE_PLURAL, namespace, name, await self._read(c.IMAGESTORE_PLURAL, namespace, name), compute)

    async def request_recreate(self, namespace: str, name: str, token: str) -> None:
        known = await self.get_ssvm(namespace, name)
        response = await self.rt.api.patch(c.SSVM_PLURAL, namespace, name, {"spec": {"recreateRequest": token}})
        # the version we knew is now stale: until the watch shows the patch, the lifecycle loop uses its result
        self.rt.remember_write(KIND, namespace, name, ((known or {}).get("metadata", {}).get("resourceVersion"),), response)
        self.rt.wake(KIND, namespace, name)

    def post_event(self, ssvm: Mapping[str, Any], reason: str, message: str, type_: str = "Normal") -> None:
        meta = ssvm["metadata"]
        zone = self.zone(meta["namespace"], (ssvm.get("spec") or {}).get("zoneRef", ""))
        zone_ref = object_ref(c.ZONE_KIND, meta["namespace"], zone["metadata"]["name"], zone["metadata"].get("uid")) if zone else None
        post_events([ev.EventSpec(reason, message, type_)], object_ref(KIND, meta["namespace"], meta["name"], meta.get("uid")), zone_ref)


class SshStartGate:
    """The start gate of the reconciler: SSH on 3922 answers with the pinned host key (`ssvm-agent info`)."""

    def __init__(self, ops: GuestOps) -> None:
        self.ops = ops

    async def check(self, *, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None, observed: ObservedVM,
                    backend: VMBackend) -> GateResult:
        return await self.ops.check_gate(ssvm, zone, observed)


def request_builder(ops: GuestOps) -> Callable[..., Any]:
    async def build(ssvm: Mapping[str, Any], zone: Mapping[str, Any], running: bool) -> VMRequest:
        return await ops.vm_request(default_vm_request(ssvm, zone, running), ssvm, zone)
    return build


def _ssh_factory(key: OperatorKey, timeouts: Timeouts) -> SSHGuestChannel:
    return SSHGuestChannel(key.private, timeouts)


def install(rt: Runtime, memo: Any) -> GuestOps | None:
    """Builds GuestOps and plugs it into the Runtime; None when guest operations are off."""
    # paramiko logs every connection and login at INFO: one line per SSH call would drown the operator's own
    if logging.getLogger("paramiko").level == logging.NOTSET:
        logging.getLogger("paramiko").setLevel(logging.WARNING)
    channel = memo.get("guest_channel")
    override = rt.backends.override
    if channel is None and override is not None and getattr(override, "name", "") == "memory":
        return None
    cluster = KubeCluster(rt)
    keys = KeyStore(memo.get("guest_secrets") or KubeSecretsApi(rt.api.api_client), ttl=memo.get("guest_secrets_ttl", 30.0))
    settings = memo.get("guest_settings") or GuestSettings()
    mesh = Mesh(cluster.addresses, quiet=memo.get("mesh_quiet", 1.0), max_delay=memo.get("mesh_max_delay", 10.0))
    if channel is not None:   # a test's channel; one that tells keys apart (the fake's for_key) gets each key its view
        factory = (lambda key, timeouts: channel.for_key(key)) if hasattr(channel, "for_key") else (lambda key, timeouts: channel)
    else:
        factory = _ssh_factory
    ops = GuestOps(cluster, keys, factory, mesh, settings)

    async def host_channels(zone: Mapping[str, Any], timeouts: Timeouts) -> Any:
        try:
            return ops.rotation.keyring(await keys.operator_keys(zone), timeouts)
        except KeyMaterialError as e:
            raise BackendError(e.reason, e.message, retry_after=10.0) from None

    rt.backends.attach_guest(host_channels)   # the external backend logs in to its hosts with the operator's keys
    rt.start_gate = SshStartGate(ops)
    rt.vm_request = request_builder(ops)
    return ops


async def startup(memo: kopf.Memo, logger: Any, **_: Any) -> None:
    from ssvm_operator.controllers.startup import create_runtime
    await create_runtime(memo)   # idempotent: the Runtime first, whatever order kopf runs start-up handlers in
    ops = install(memo.runtime, memo)
    memo["guestops"] = ops
    logger.info("guest operations %s", "on: SSH start gate on port 3922" if ops else "off (the backend's VMs have no guests)")


def index_mesh(body: kopf.Body, **_: Any) -> dict[str, Any]:
    return {MESH_KEY: address_of(body)}


def _ops(memo: kopf.Memo, kwargs: Mapping[str, Any]) -> GuestOps | None:
    ops: GuestOps | None = memo.get("guestops")
    if ops is not None:
        ops.cluster.use(kwargs)  # type: ignore[attr-defined]
    return ops


async def on_ssvm_event(type: str | None, namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    ops = _ops(memo, kwargs)
    if ops is None or not namespace:
        return
    ops.mesh.observe()
    if type == "DELETED":
        zone = (body.get("spec") or {}).get("zoneRef", "")
        ops.forget(namespace, name)
        ops.cluster.bodies.pop((namespace, name), None)  # type: ignore[attr-defined]
        try:
            await ops.prune_store_mounts(namespace, zone, name)
        except ApiError:
            pass   # the next result written to the store prunes it too
        return
    ops.wake(namespace, name)


def _wake_zone(ops: GuestOps, namespace: str, zone: str, kwargs: Mapping[str, Any]) -> None:
    for body in (kwargs.get("ssvms_by_zone") or {}).get((namespace, zone), []):
        ops.wake(namespace, body["metadata"]["name"])


def on_zone_event(namespace: str, name: str, memo: kopf.Memo, **kwargs: Any) -> None:
    ops = _ops(memo, kwargs)
    if ops is not None and namespace:
        _wake_zone(ops, namespace, name, kwargs)


def on_store_event(namespace: str, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    ops = _ops(memo, kwargs)
    zone = (body.get("spec") or {}).get("zoneRef")
    if ops is not None and namespace and zone:
        _wake_zone(ops, namespace, zone, kwargs)


async def guest_worker(namespace: str, name: str, body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo,
                       **kwargs: Any) -> None:
    ops = _ops(memo, kwargs)
    if ops is None:
        return
    ops.cluster.bodies[(namespace, name)] = body  # type: ignore[attr-defined]
    await ops.run_worker(namespace, name, lambda: bool(stopped))


def register(registry: kopf.OperatorRegistry) -> None:
    g, v = c.GROUP, c.VERSION
    kopf.on.startup(id=STARTUP, registry=registry)(startup)
    kopf.index(g, v, c.SSVM_PLURAL, id=MESH_INDEX, registry=registry)(index_mesh)
    kopf.on.event(g, v, c.SSVM_PLURAL, id=SSVM_EVENT, registry=registry)(on_ssvm_event)
    kopf.on.event(g, v, c.ZONE_PLURAL, id=ZONE_EVENT, registry=registry)(on_zone_event)
    kopf.on.event(g, v, c.IMAGESTORE_PLURAL, id=STORE_EVENT, registry=registry)(on_store_event)
    kopf.daemon(g, v, c.SSVM_PLURAL, id=WORKER, registry=registry, cancellation_timeout=5.0)(guest_worker)
