"""The one interface every VM backend implements: ensure, start, stop, reboot, destroy, observe.

The controllers decide; a backend only carries out and reports what it sees. Methods are async
because backends talk to an API or a host; blocking clients run in a thread with a timeout.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

from ssvm_operator.model.vm import BackendReadiness, ObservedVM, VMRequest


class BackendError(Exception):
    """A backend call failed; `reason` becomes a condition reason, `retry_after` a backoff hint."""

    def __init__(self, reason: str, message: str, retry_after: float | None = 10.0):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


@runtime_checkable
class VMBackend(Protocol):
    name: str

    async def readiness(self, namespace: str, zone_name: str, zone_spec: Mapping[str, Any]) -> BackendReadiness:
        """Whether this backend can run VMs for the zone and its template is available."""

    async def ensure(self, request: VMRequest) -> ObservedVM:
        """Creates the VM if missing and brings its desired run state and spec in line; idempotent."""

    async def start(self, namespace: str, name: str) -> None: ...

    async def stop(self, namespace: str, name: str) -> None: ...

    async def reboot(self, namespace: str, name: str) -> None:
        """A new instance of a running VM (a soft reboot); starts a stopped one."""

    async def destroy(self, namespace: str, name: str) -> None:
        """Deletes the VM; succeeds when it is already gone."""

    async def observe(self, namespace: str, name: str) -> ObservedVM: ...
