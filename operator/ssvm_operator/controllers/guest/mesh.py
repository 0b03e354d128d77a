"""The firewall mesh, coalesced: which SSVMs are up with which address, a change time, and a wait
until the mesh has been quiet for a moment, so a burst of N SSVMs coming up costs each one a single
recomputation (O(N) pushes in all) instead of one push per join (CloudStack's N(N+1)/2)."""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ssvm_operator.controllers.guest.actions import UP_STATES, SSVMAddress, address_order


def address_of(body: Mapping[str, Any]) -> SSVMAddress:
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    public = ((status.get("nics") or {}).get("public") or {}).get("ip")
    state = None if meta.get("deletionTimestamp") else status.get("state")
    return SSVMAddress(meta.get("namespace", ""), meta.get("name", ""), state, public)


PER_MEMBER = 0.03   # seconds of the longest wait per SSVM in the mesh (30 s at 1,000)


def members(addresses: Iterable[SSVMAddress]) -> dict[tuple[str, str], str]:
    """What the firewalls depend on: who is up, with which public address."""
    return {(a.namespace, a.name): a.public_ip for a in addresses if a.state in UP_STATES and a.public_ip}


class Mesh:
    """`source()` lists every SSVM's address (a kopf index in the operator, a dict in tests)."""

    def __init__(self, source: Callable[[], Iterable[SSVMAddress]], quiet: float = 0.5, max_delay: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source, self.quiet, self.max_delay, self.clock = source, quiet, max_delay, clock
        self.version = 0
        self.changed_at = float("-inf")
        self._members: dict[tuple[str, str], str] | None = None
        self._changes = 0   # of the members: the sorted peers are kept until the next
        self._sorted: tuple[int, list[str], Counter] | None = None   # (changes when sorted, addresses, holders of each)
        self.listeners: list[Callable[[], None]] = []

    def observe(self, changed: SSVMAddress | None = None) -> bool:
        """Re-reads the source, or only `changed` (one SSVM's event: O(1), not O(SSVMs)); True (and listeners
        told) when who is up or an address changed."""
        if changed is not None and self._members is not None:
            key = (changed.namespace, changed.name)
            up = members((changed,)).get(key)
            if self._members.get(key) == up:
                return False
            if up is None:
                del self._members[key]
            else:
                self._members[key] = up
        else:
            now = members(self.source())
            if now == self._members:
                return False
            first = self._members is None
            self._members = now
            if first:
                self._changes += 1
                return False   # the starting picture is not a change: nothing to re-push after a restart
        self._changes += 1
        self.version += 1
        self.changed_at = self.clock()
        for listener in list(self.listeners):
            listener()
        return True

    def peers(self, namespace: str, name: str) -> list[str]:
        """Every other up SSVM's public address, sorted: the sort is done once per change, not once per call."""
        if self._members is None:
            self.observe()
        current = self._members or {}
        if self._sorted is None or self._sorted[0] != self._changes:
            self._sorted = (self._changes, sorted(set(current.values()), key=address_order), Counter(current.values()))
        _, ordered, holders = self._sorted
        own = current.get((namespace, name))
        return [ip for ip in ordered if ip != own] if own is not None and holders[own] == 1 else list(ordered)

    @property
    def longest_wait(self) -> float:
        """`max_delay`, or PER_MEMBER seconds per SSVM in a larger mesh: re-pushing every allow-list (N addresses
        each) while SSVMs keep joining then costs O(N) per second, not O(N^2)."""
        return max(self.max_delay, PER_MEMBER * len(self._members or ()))

    async def settled(self) -> None:
        """Returns once the mesh saw no change for `quiet` seconds, or after `longest_wait` at most."""
        started = self.clock()
        while True:
            now, longest = self.clock(), self.longest_wait
            left = self.quiet - (now - self.changed_at)
            if left <= 0 or now - started >= longest:
                return
            await asyncio.sleep(min(left, longest - (now - started)))
