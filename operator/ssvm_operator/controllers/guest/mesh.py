"""The firewall mesh, coalesced: one signature of the SSVMs that are up, a change time, and a wait
until the mesh has been quiet for a moment, so a burst of N SSVMs coming up costs each one a single
recomputation (O(N) pushes in all) instead of one push per join (CloudStack's N(N+1)/2)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ssvm_operator.controllers.guest.actions import UP_STATES, SSVMAddress, firewall_peers


def address_of(body: Mapping[str, Any]) -> SSVMAddress:
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    public = ((status.get("nics") or {}).get("public") or {}).get("ip")
    state = None if meta.get("deletionTimestamp") else status.get("state")
    return SSVMAddress(meta.get("namespace", ""), meta.get("name", ""), state, public)


def signature(addresses: Iterable[SSVMAddress]) -> frozenset[tuple[str, str, str]]:
    """What the firewalls depend on: who is up, with which public address."""
    return frozenset((a.namespace, a.name, a.public_ip) for a in addresses if a.state in UP_STATES and a.public_ip)


class Mesh:
    """`source()` lists every SSVM's address (a kopf index in the operator, a dict in tests)."""

    def __init__(self, source: Callable[[], Iterable[SSVMAddress]], quiet: float = 0.5, max_delay: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source, self.quiet, self.max_delay, self.clock = source, quiet, max_delay, clock
        self.version = 0
        self.changed_at = float("-inf")
        self._last: frozenset | None = None
        self.listeners: list[Callable[[], None]] = []

    def observe(self) -> bool:
        """Re-reads the source; True (and listeners told) when the signature changed."""
        sig = signature(self.source())
        if sig == self._last:
            return False
        first = self._last is None
        self._last = sig
        if first:
            return False   # the starting picture is not a change: nothing to re-push after a restart
        self.version += 1
        self.changed_at = self.clock()
        for listener in list(self.listeners):
            listener()
        return True

    def peers(self, namespace: str, name: str) -> list[str]:
        return firewall_peers((namespace, name), self.source())

    async def settled(self) -> None:
        """Returns once the mesh saw no change for `quiet` seconds, or after `max_delay` at most."""
        started = self.clock()
        while True:
            now = self.clock()
            left = self.quiet - (now - self.changed_at)
            if left <= 0 or now - started >= self.max_delay:
                return
            await asyncio.sleep(min(left, self.max_delay - (now - started)))
