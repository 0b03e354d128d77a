"""The start gate: when may an SSVM whose VM runs be called Running?

Now the backend's own readiness (the VM runs). The guest issue replaces it with the SSH check on port
3922 with the pinned host key: implement `StartGate` and put it in `Runtime.start_gate`.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol

from ..backends.base import ObservedVM, VMBackend, VMPhase
from ..core.lifecycle import GateResult


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
