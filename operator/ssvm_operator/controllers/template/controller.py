"""The template controller (kopf): one sync loop per Template, an index of the SSVMs it can hand work to,
wake-ups from the zones, stores and SSVMs of the namespace, and the finalizer that removes the files.
It owns every field of a Template's status and its Ready condition."""
from __future__ import annotations

import json
from typing import Any

import kopf

from ssvm_operator import constants as c
from ssvm_operator.controllers import ids
from ssvm_operator.controllers.template.worker import TemplateOps, ssvm_entry


async def index_ssvm(namespace: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace, (body.get("spec") or {}).get("zoneRef", "")): ssvm_entry(body)}


class TemplateController:
    def __init__(self, ops: TemplateOps, indexes: dict[str, Any]) -> None:
        self.ops = ops
        self.indexes = indexes   # kopf's indexes, handed over by each handler call; the ops read them too
        self._ssvm_inputs: dict[tuple[str, str], str] = {}

    def use(self, kwargs: dict[str, Any]) -> None:
        for name in (ids.ZONES_INDEX, ids.STORES_INDEX, ids.TEMPLATE_SSVMS_INDEX):
            if name in kwargs:
                self.indexes[name] = kwargs[name]

    def _wake_namespace(self, namespace: str) -> None:
        self.ops.wakeups.wake_all(lambda key: key[0] == namespace)

    async def on_ssvm_event(self, type: str | None, namespace: str, name: str, body: kopf.Body, **kwargs: Any) -> None:
        self.use(kwargs)
        inputs = "" if type == "DELETED" else json.dumps(ssvm_entry(body), sort_keys=True)
        if namespace and self._ssvm_inputs.get((namespace, name)) != inputs:   # a health heartbeat alone wakes nobody
            self._ssvm_inputs[(namespace, name)] = inputs
            if type == "DELETED":
                self._ssvm_inputs.pop((namespace, name), None)
            self._wake_namespace(namespace)

    async def on_namespace_event(self, namespace: str, **kwargs: Any) -> None:
        self.use(kwargs)
        if namespace:
            self._wake_namespace(namespace)

    async def sync(self, namespace: str, name: str, body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        self.use(kwargs)
        await self.ops.run(namespace, name, stopped, lambda: self.ops.kube.unseen.freshest(c.TEMPLATE_KIND, namespace, name, dict(body)))

    async def remove_files(self, body: kopf.Body, retry: int = 0, **kwargs: Any) -> None:
        self.use(kwargs)
        blocked = await self.ops.finalize(dict(body))
        if blocked:
            # soon at first (an SSVM coming back, a store being deleted with its zone), every 10 s after a while
            raise kopf.TemporaryError(blocked, delay=min(10.0, 2.0 + retry))

    def register(self, registry: kopf.OperatorRegistry) -> None:
        g, v = c.GROUP, c.VERSION
        kopf.index(g, v, c.SSVM_PLURAL, id=ids.TEMPLATE_SSVMS_INDEX, registry=registry)(index_ssvm)
        kopf.on.event(g, v, c.SSVM_PLURAL, id=ids.TEMPLATE_SSVM_EVENT, registry=registry)(self.on_ssvm_event)
        kopf.on.event(g, v, c.IMAGESTORE_PLURAL, id=ids.TEMPLATE_STORE_EVENT, registry=registry)(self.on_namespace_event)
        kopf.on.event(g, v, c.ZONE_PLURAL, id=ids.TEMPLATE_ZONE_EVENT, registry=registry)(self.on_namespace_event)
        kopf.daemon(g, v, c.TEMPLATE_PLURAL, id=ids.TEMPLATE_WORKER, registry=registry, cancellation_backoff=ids.DAEMON_EXIT_GRACE,
                    cancellation_timeout=ids.DAEMON_CANCEL_TIMEOUT)(self.sync)
        kopf.on.delete(g, v, c.TEMPLATE_PLURAL, id=ids.TEMPLATE_FINALIZER, registry=registry)(self.remove_files)
