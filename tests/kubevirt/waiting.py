"""Bounded waiting for conditions the simulator brings about (no timing assertions: only a cap)."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, TypeVar

T = TypeVar("T")
CAP = 30.0  # seconds; a condition not met by then fails the test


def wait_for(probe: Callable[[], T], what: str, cap: float = CAP) -> T:
    deadline = time.monotonic() + cap
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


async def await_for(probe: Callable[[], Awaitable[T]], what: str, cap: float = CAP) -> T:
    deadline = time.monotonic() + cap
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")
