"""Wake-ups of the per-object loops: a watch event (or our own write) wakes the loop of an object at
once; otherwise it sleeps until its next pass is due or the operator stops."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol


class Stopped(Protocol):
    """kopf's DaemonStopped: true once the loop must end; `wait()` resolves then."""

    def __bool__(self) -> bool: ...
    def wait(self) -> Awaitable[Any]: ...

MAX_BACKOFF = 60.0   # seconds: the longest a failing loop waits before it tries again


def backoff_delay(attempt: int, hint: float | None, ceiling: float = MAX_BACKOFF) -> float:
    """Exponential backoff from `hint` (a backend's Retry-After) or 1 s, capped at `ceiling`."""
    base = hint if hint is not None else 1.0
    return min(ceiling, base * (2 ** min(attempt, 8)))


class Wakeups:
    def __init__(self) -> None:
        self._events: dict[Hashable, asyncio.Event] = {}

    def event(self, key: Hashable) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def wake(self, key: Hashable) -> None:
        self.event(key).set()

    def wake_all(self, keys: Callable[[Hashable], bool] = lambda _k: True) -> None:
        for key, event in list(self._events.items()):
            if keys(key):
                event.set()

    def clear(self, key: Hashable) -> None:
        self.event(key).clear()

    def forget(self, key: Hashable) -> None:
        self._events.pop(key, None)

    async def sleep(self, key: Hashable, seconds: float, stopped: Stopped) -> None:
        """Until woken, stopped, or `seconds` passed: one wait, no polling (thousands of loops sleep at once)."""
        event = self.event(key)
        if stopped or event.is_set() or seconds <= 0:
            return
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stopped.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
