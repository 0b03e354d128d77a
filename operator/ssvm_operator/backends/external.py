"""The external-host backend (CloudStack's QuickCloud): SSVMs are hosts the operator does not create.

Each SSVM is assigned one host of `spec.secondaryStorage.template.external.hosts` (kept once
assigned: status.backendRef.name, else slot i takes hosts[i-1], else the first free one). There is no
VM: observe asks the host's agent `service status` over SSH (pinned `hostKey`, bounded timeouts, in a
thread); start/stop/reboot run `service start|stop|restart`; destroy stops the service and releases
the host. The instance id is the service's start time, so a restart counts as a reboot.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from ssvm_operator import metrics
from ssvm_operator.model.naming import slot_of
from ssvm_operator.model.spec_hash import material_hash
from ssvm_operator.ssh import errors
from ssvm_operator.ssh.channel import GuestChannel, GuestTarget, Timeouts
from ssvm_operator.backends.base import BackendError
from ssvm_operator.model.vm import EXTERNAL_HOST_KIND, BackendReadiness, NicInfo, ObservedVM, VMPhase, VMRequest

log = logging.getLogger(__name__)
ChannelSource = Callable[[Mapping[str, Any], Timeouts], Awaitable[GuestChannel]]
KIND = EXTERNAL_HOST_KIND
NO_FREE_HOST = "NoFreeExternalHost"
OBSERVE_TIMEOUTS = Timeouts(connect=3.0, banner=5.0, auth=5.0, command=10.0, deadline=15.0)
CONTROL_TIMEOUTS = Timeouts(connect=3.0, banner=5.0, auth=5.0, command=40.0, deadline=50.0)


def zone_hosts(zone_spec: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    ss = (zone_spec or {}).get("secondaryStorage") or {}
    return list((((ss.get("template") or {}).get("external") or {}).get("hosts")) or [])


def choose_host(name: str, zone: str, hosts: list[Mapping[str, Any]], taken: Mapping[str, str],
                recorded: str | None = None) -> Mapping[str, Any] | None:
    """The host for SSVM `name`: its recorded one, its slot's, else the first free; `taken` maps host -> SSVM."""
    def free(h: Mapping[str, Any]) -> bool:
        return taken.get(h["name"], name) == name

    by_name = {h["name"]: h for h in hosts}
    if recorded in by_name and free(by_name[recorded]):
        return by_name[recorded]
    slot = slot_of(zone, name)
    if slot is not None and slot <= len(hosts) and free(hosts[slot - 1]):
        return hosts[slot - 1]
    # slot hosts of other live SSVMs are skipped only when taken; a later slot SSVM then takes another host
    return next((h for h in hosts if free(h)), None)


@dataclass
class _Binding:
    name: str                     # the SSVM's
    zone: dict[str, Any]          # {"metadata": {namespace, name}, "spec": ...}: what the key store needs
    host: str | None = None
    recorded: str | None = None   # status.backendRef.name when the SSVM was last seen
    spec_hash: str | None = None


class ExternalBackend:
    name = "external"

    def __init__(self, channels: ChannelSource | None = None) -> None:
        self.channels = channels
        self._bound: dict[tuple[str, str], _Binding] = {}

    def attach(self, channels: ChannelSource) -> None:
        """Guest operations hand over the operator's keys (a keyring channel per zone) at start-up."""
        self.channels = channels

    # --- which SSVM is which host ---
    def bind(self, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None) -> None:
        """Told the SSVM and its zone before each pass: hosts survive an operator restart through backendRef."""
        meta = ssvm["metadata"]
        if zone is None:
            return
        ref = (ssvm.get("status") or {}).get("backendRef") or {}
        b = self._binding(meta["namespace"], meta["name"], zone["metadata"]["name"], zone.get("spec") or {})
        b.recorded = ref.get("name") if ref.get("backend") == "external" else None
        b.spec_hash = material_hash(zone.get("spec") or {}, ssvm.get("spec") or {})
        if b.host is None and b.recorded:
            self._assign(meta["namespace"], meta["name"], b)

    def _binding(self, ns: str, name: str, zone_name: str, zone_spec: Mapping[str, Any]) -> _Binding:
        zone = {"metadata": {"namespace": ns, "name": zone_name}, "spec": dict(zone_spec)}
        b = self._bound.setdefault((ns, name), _Binding(name, zone))
        b.zone = zone
        return b

    def _assign(self, ns: str, name: str, b: _Binding) -> Mapping[str, Any] | None:
        zone_name, hosts = b.zone["metadata"]["name"], zone_hosts(b.zone["spec"])
        taken = {o.host: n for (ons, n), o in self._bound.items()
                 if o.host and ons == ns and o.zone["metadata"]["name"] == zone_name and n != name}
        host = choose_host(name, zone_name, hosts, taken, b.host or b.recorded)
        b.host = host["name"] if host else None
        return host

    def _host(self, ns: str, name: str) -> tuple[_Binding, Mapping[str, Any]] | None:
        b = self._bound.get((ns, name))
        if b is None or b.host is None:
            return None
        host = next((h for h in zone_hosts(b.zone["spec"]) if h["name"] == b.host), None)
        if host is None:   # removed from the zone's list: no longer ours to drive
            b.host = None
            return None
        return b, host

    # --- talking to a host ---
    async def _service(self, b: _Binding, host: Mapping[str, Any], op: str, timeouts: Timeouts) -> dict[str, Any]:
        if self.channels is None:
            raise BackendError("GuestOperationsOff", "The external backend needs guest operations (the operator's SSH key).", 60.0)
        channel = await self.channels(b.zone, timeouts)
        ns, zone = b.zone["metadata"]["namespace"], b.zone["metadata"]["name"]
        target = GuestTarget(name=f"{ns}/{b.name}", address=host["address"], host_key=host["hostKey"], port=int(host.get("port", 3922)),
                             zone=zone)
        try:
            with metrics.time_ssh("service"):
                result = await channel.run_action(target, "service", {"op": op})
        except errors.GuestError as e:
            metrics.record_action("service", False, e.reason, namespace=ns, zone=zone)
            raise BackendError(e.reason, f"host {host['name']} ({host['address']}): {e.message}"[:500], 10.0) from None
        metrics.record_action("service", result.ok, result.reason or "", namespace=ns, zone=zone)
        if not result.ok:
            raise BackendError(result.reason or "ServiceControlFailed",
                               f"host {host['name']}: ssvm-agent service {op}: {result.message}"[:500], 10.0)
        return result.data

    def _observed(self, b: _Binding, host: Mapping[str, Any], data: Mapping[str, Any]) -> ObservedVM:
        running = bool(data.get("running"))
        nic = NicInfo(ip=host["address"], network="external")
        return ObservedVM(VMPhase.RUNNING if running else VMPhase.STOPPED, "" if running else "ServiceStopped",
                          "" if running else f"The secondary storage service on host {host['name']} is stopped.",
                          nics={"control": nic, "public": nic} if running else {},
                          instance_id=f"{host['name']}@{data.get('startedAt')}" if running else None,
                          backend_name=host["name"], kind=KIND, spec_hash=b.spec_hash)

    # --- the interface ---
    async def readiness(self, namespace: str, zone_name: str, zone_spec: Mapping[str, Any]) -> BackendReadiness:
        hosts = zone_hosts(zone_spec)
        if not hosts:
            return BackendReadiness(False, False, "NoExternalHosts", "List the hosts in spec.secondaryStorage.template.external.hosts.")
        if self.channels is None:
            return BackendReadiness(False, True, "GuestOperationsOff", "The external backend needs guest operations (the operator's SSH key).")
        try:
            await self.channels({"metadata": {"namespace": namespace, "name": zone_name}, "spec": dict(zone_spec)}, OBSERVE_TIMEOUTS)
        except BackendError as e:
            return BackendReadiness(False, True, e.reason, e.message)
        return BackendReadiness(True, True, "ExternalHostsListed", f"{len(hosts)} external host(s) listed; the operator key is available.")

    async def ensure(self, request: VMRequest) -> ObservedVM:
        b = self._binding(request.namespace, request.name, request.zone_name, request.zone_spec)
        b.spec_hash = request.spec_hash or b.spec_hash
        host = self._assign(request.namespace, request.name, b)
        if host is None:
            raise BackendError(NO_FREE_HOST, f"All {len(zone_hosts(request.zone_spec))} external host(s) of zone "
                               f"{request.zone_name} serve other SSVMs.", 30.0)
        data = await self._service(b, host, "status", OBSERVE_TIMEOUTS)
        if bool(data.get("running")) != request.running:
            data = await self._service(b, host, "start" if request.running else "stop", CONTROL_TIMEOUTS)
        return self._observed(b, host, data)

    async def _control(self, namespace: str, name: str, op: str) -> None:
        found = self._host(namespace, name)
        if found is None:
            raise BackendError("NoHostAssigned", f"No external host is assigned to {name} yet.", 5.0)
        await self._service(*found, op, CONTROL_TIMEOUTS)

    async def start(self, namespace: str, name: str) -> None:
        await self._control(namespace, name, "start")

    async def stop(self, namespace: str, name: str) -> None:
        await self._control(namespace, name, "stop")

    async def reboot(self, namespace: str, name: str) -> None:
        await self._control(namespace, name, "restart")

    async def destroy(self, namespace: str, name: str) -> None:
        found = self._host(namespace, name)
        if found is not None:
            await self._service(*found, "stop", CONTROL_TIMEOUTS)   # the host is not ours to delete
        self._bound.pop((namespace, name), None)

    async def observe(self, namespace: str, name: str) -> ObservedVM:
        found = self._host(namespace, name)
        if found is None:
            return ObservedVM(VMPhase.ABSENT, "NoHostAssigned", "No external host is assigned yet.")
        b, host = found
        try:
            data = await self._service(b, host, "status", OBSERVE_TIMEOUTS)
        except BackendError as e:
            return ObservedVM(VMPhase.FAILED, e.reason, e.message, backend_name=host["name"], kind=KIND, spec_hash=b.spec_hash)
        return self._observed(b, host, data)
