"""Status initialisation's safety net: every condition an object will carry is present (Unknown) even
when no controller writes to it (its reconcile fails before it can say anything).

The status writer completes every write with the missing conditions, so the usual first write of a
controller initialises the object at no extra cost. This handler, on watch events (kopf stores nothing
for those), waits `grace` seconds for such a write; only an object nobody has written to by then is read
and written. An ImageStore's observedGeneration, which no reconciler owns, is written at once.
"""
from __future__ import annotations

import asyncio
from typing import Any

import kopf

from ssvm_operator import constants as c
from ssvm_operator.api.crd import KINDS
from ssvm_operator.controllers import ids
from ssvm_operator.kube.client import ApiError
from ssvm_operator.kube.context import Kube
from ssvm_operator.model.initial_status import kind_initial_status_patch
from ssvm_operator.model.views import awaits_kopf_finalizer

# Kinds kopf puts its finalizer on: their first status write waits for it.
FINALIZED = frozenset({c.ZONE_KIND, c.SSVM_KIND, c.TEMPLATE_KIND})
GRACE = 15.0   # seconds a controller has to write an object's first status before this handler does (long: under load too)


class StatusInitializer:
    def __init__(self, kube: Kube, kind: str, plural: str, grace: float = GRACE) -> None:
        self.kube, self.kind, self.plural, self.grace = kube, kind, plural, grace
        self._pending: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._writing: set[asyncio.Task[None]] = set()

    def compute(self, status: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        if self.kind in FINALIZED and awaits_kopf_finalizer(meta):
            return {}   # kopf's finalizer patch comes first; its event brings this handler again
        return kind_initial_status_patch(self.kind, status, meta)

    async def on_event(self, type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata", {})
        namespace, name = meta.get("namespace"), meta.get("name")
        if not namespace:
            return
        key = (namespace, name)
        if type == "DELETED":
            self.kube.status.forget(self.kind, namespace, name)
        patch = {} if type == "DELETED" else kind_initial_status_patch(self.kind, body.get("status") or {}, meta)
        if not patch:   # the usual case: a cheap look at the event's body, no request
            timer = self._pending.pop(key, None)
            if timer is not None:
                timer.cancel()
            return
        if "conditions" not in patch:   # a new generation of a kind whose observedGeneration is ours: nothing to wait for
            await self._write(dict(body))
        elif key not in self._pending:
            # a timer, not a sleeping task: the operator's shutdown does not wait for it
            self._pending[key] = asyncio.get_running_loop().call_later(self.grace, self._grace_over, key)

    def _grace_over(self, key: tuple[str, str]) -> None:
        self._pending.pop(key, None)
        if not self.kube.status.has_written(self.kind, *key):   # else a controller wrote it; the watch lags behind
            task = asyncio.get_running_loop().create_task(self._read_and_write(key), name=f"status-init {self.kind} {key[0]}/{key[1]}")
            self._writing.add(task)   # held: the loop keeps only weak references to tasks
            task.add_done_callback(self._writing.discard)

    async def _read_and_write(self, key: tuple[str, str]) -> None:
        try:
            body = await self.kube.status.read(self.plural, *key)
        except ApiError:
            return   # the object's next event brings this handler again
        await self._write(body)

    async def _write(self, body: dict[str, Any] | None) -> None:
        try:
            await self.kube.status.write(self.plural, body, self.compute)
        except ApiError:
            pass   # the object's next event brings this handler again


def register(registry: kopf.OperatorRegistry, kube: Kube) -> None:
    for info in KINDS:
        init = StatusInitializer(kube, info.kind, info.plural)
        kopf.on.event(c.GROUP, c.VERSION, info.plural, id=ids.INIT_STATUS[info.kind], registry=registry)(init.on_event)
