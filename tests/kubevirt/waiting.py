"""Bounded waiting for conditions the simulator brings about (no timing assertions: only a cap).
The probe-first signature of these tests over the shared helpers in tests/waiting.py."""
from __future__ import annotations

from typing import Awaitable, Callable, TypeVar

from tests import waiting

T = TypeVar("T")
CAP = 30.0  # seconds; a condition not met by then fails the test


def wait_for(probe: Callable[[], T], what: str, cap: float = CAP) -> T:
    return waiting.wait_for(what, probe, timeout=cap, interval=0.05)


async def await_for(probe: Callable[[], Awaitable[T]], what: str, cap: float = CAP) -> T:
    return await waiting.await_for(what, probe, timeout=cap)
