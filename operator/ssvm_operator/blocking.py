"""The one way blocking client calls (the `kubernetes` client) run from async code: in a thread, bounded."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, TypeVar

T = TypeVar("T")


async def call_in_thread(fn: Callable[..., T], *args: Any, timeout: float, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` off the event loop; the client's own request timeout plus an outer one a
    second longer (asyncio.TimeoutError), so neither a slow server nor a stuck socket holds a handler."""
    kwargs.setdefault("_request_timeout", timeout)
    return await asyncio.wait_for(asyncio.to_thread(fn, *args, **kwargs), timeout=timeout + 1)
