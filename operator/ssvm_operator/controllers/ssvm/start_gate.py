"""The start gate: when may an SSVM whose VM runs be called Running? (CloudStack's CheckSshCommand.)

`SSHStartGate`: SSH on the guest's port answers `ssvm-agent info` with the pinned host key, logged in
with the operator's keys. What it saw (instance, address, host key) is kept in `Reach`, which the guest
controller reads to push actions and which wakes its worker when a new instance is reached.
`BackendReadinessGate` serves backends whose VMs have no guest (the in-memory one).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ssvm_operator import constants as c
from ssvm_operator import metrics
from ssvm_operator.backends.base import VMBackend
from ssvm_operator.controllers.keys.rotation import Logins
from ssvm_operator.controllers.keys.secrets import KeyMaterialError, KeyStore, external_host
from ssvm_operator.controllers.ssvm.lifecycle import GateResult
from ssvm_operator.model.vm import EXTERNAL_HOST_KIND, ObservedVM, VMPhase
from ssvm_operator.ssh import errors
from ssvm_operator.ssh.channel import GuestTarget, Timeouts

SSH_READY = "SSHReady"
GATE_TIMEOUTS = Timeouts(connect=3.0, banner=5.0, auth=5.0, command=10.0, deadline=15.0)


class StartGate(Protocol):
    async def check(self, *, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None, observed: ObservedVM,
                    backend: VMBackend) -> GateResult:
        """Called only when the backend reports the VM running; must be bounded in time."""


class BackendReadinessGate:
    """Passes as soon as the backend reports the VM running."""

    async def check(self, *, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None, observed: ObservedVM,
                    backend: VMBackend) -> GateResult:
        if observed.phase == VMPhase.RUNNING:
            return GateResult(True, "BackendReady", "The backend reports the VM running.")
        return GateResult(False, "VMNotRunning", "The VM is not running.")


@dataclass(frozen=True)
class Reached:
    """What the gate saw when SSH answered: the instance and where to reach it."""

    instance_id: str | None
    address: str
    host_key: str
    host_fingerprint: str
    simulated: bool
    at: float
    port: int = c.SSH_PORT
    boot_id: str | None = None   # the guest's own (agent `info`): pushes carry it, so a rebooted guest refuses stale content


class Reach(dict[tuple[str, str], Reached]):
    """(namespace, name) -> Reached; `listeners` are told when a new instance or address is reached."""

    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[Callable[[str, str], None]] = []

    def confirm(self, key: tuple[str, str], address: str, host_key: str, port: int, at: float) -> None:
        """A later login to the same address with the same pinned key (a health check) renews the gate's pass."""
        seen = self.get(key)
        if seen is not None and (seen.address, seen.host_key, seen.port) == (address, host_key, port) and at > seen.at:
            self[key] = replace(seen, at=at)

    def reached(self, key: tuple[str, str], seen: Reached) -> None:
        before = self.get(key)
        self[key] = seen
        if before is None or (before.instance_id, before.boot_id, before.address) != (seen.instance_id, seen.boot_id, seen.address):
            for listener in list(self.listeners):
                listener(*key)


class SSHStartGate:
    def __init__(self, keys: KeyStore, logins: Logins, reach: Reach, *, timeouts: Timeouts = GATE_TIMEOUTS, ttl: float = 20.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keys, self.logins, self.reach = keys, logins, reach
        self.timeouts, self.ttl, self.clock = timeouts, ttl, clock   # a pass of the same instance is reused `ttl` seconds

    async def check(self, *, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None, observed: ObservedVM,
                    backend: VMBackend | None = None) -> GateResult:
        meta = ssvm["metadata"]
        key = (meta["namespace"], meta["name"])
        address = observed.control_ip
        if zone is None:
            return GateResult(False, "ZoneNotFound", "The zone is missing: no operator key to log in with.", SSH_READY)
        if not address:
            return GateResult(False, "NoControlAddress", "The VM reports no control address yet.", SSH_READY)
        try:
            # the VM says what it is: during a move between backends the zone's backend may not be its own
            host, port = (external_host(zone, observed.backend_name) if observed.kind == EXTERNAL_HOST_KIND
                          else (await self.keys.host_key(ssvm, create=False), c.SSH_PORT))
            op = await self.keys.operator_keys(zone)
        except KeyMaterialError as e:
            return GateResult(False, e.reason, e.message, SSH_READY)
        seen = self.reach.get(key)
        # Health checks renew a pass (Reach.confirm): while they succeed, a running guest is not logged into again.
        interval = float(((zone.get("spec") or {}).get("secondaryStorage") or {}).get("health", {}).get("intervalSeconds", 60))
        if (seen and seen.instance_id == observed.instance_id and seen.address == address and seen.host_key == host.public
                and seen.port == port and self.clock() - seen.at < max(self.ttl, 2 * interval + 5)):
            return GateResult(True, "SSHReady", _message(seen), SSH_READY)
        target = GuestTarget(name=f"{key[0]}/{key[1]}", address=address, host_key=host.public, port=port, zone=zone["metadata"]["name"])
        started = self.clock()
        try:
            result = await self.logins.keyring(op, self.timeouts).run_action(target, "info", {})
        except errors.GuestError as e:
            metrics.record_action("info", False, e.reason, self.clock() - started, key[0], target.zone)
            self.reach.pop(key, None)
            return GateResult(False, e.reason, e.message[:500], SSH_READY)
        metrics.record_action("info", result.ok, result.reason or "", self.clock() - started, key[0], target.zone)
        if not result.ok:
            return GateResult(False, result.reason or "AgentError", f"ssvm-agent info failed: {result.message}"[:500], SSH_READY)
        now = Reached(observed.instance_id, address, host.public, host.fingerprint, result.simulated, self.clock(), port,
                      result.data.get("bootId") if isinstance(result.data.get("bootId"), str) else None)
        self.reach.reached(key, now)
        return GateResult(True, "SSHReady", _message(now), SSH_READY)


def _message(seen: Reached) -> str:
    sim = " (simulated guest)" if seen.simulated else ""
    return f"SSH on {seen.address}:{seen.port} answered with the pinned host key {seen.host_fingerprint}{sim}."
