"""The one status writer: read, compute, patch with the resourceVersion computed from, and on a conflict
compute again on a fresh read. Each write also carries the conditions the object does not have yet
(Unknown), so the first write to an object initialises it. Each answer goes to the unseen-writes record,
so loops that read a lagging view use it instead."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator.kube.client import ApiError, KubeClient
from ssvm_operator.kube.unseen import UnseenWrites
from ssvm_operator.model.initial_status import completed_status_patch

Compute = Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]   # (status, body) -> status patch
KIND_OF = {c.ZONE_PLURAL: c.ZONE_KIND, c.IMAGESTORE_PLURAL: c.IMAGESTORE_KIND, c.SSVM_PLURAL: c.SSVM_KIND, c.TEMPLATE_PLURAL: c.TEMPLATE_KIND}


class StatusWriter:
    def __init__(self, client: KubeClient, unseen: UnseenWrites, attempts: int = 4) -> None:
        self.client, self.unseen, self.attempts = client, unseen, attempts
        self._written: set[tuple[str, str, str]] = set()   # (kind, namespace, name) this process wrote a status to

    def has_written(self, kind: str, namespace: str, name: str) -> bool:
        """Whether this process wrote the object's status (so it carries every condition of its kind)."""
        return (kind, namespace, name) in self._written

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._written.discard((kind, namespace, name))

    async def read(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.client.get(plural, namespace, name)

    async def write(self, plural: str, body: Mapping[str, Any] | None, compute: Compute, deleting: bool = False) -> dict[str, Any]:
        """Writes `compute(status, body)` (nothing when it is empty); returns the patch written, {} if none.

        `body` is the caller's view; None reads the object first. A deleting object is left alone unless
        `deleting` (a finalizer saying what holds the deletion)."""
        kind = KIND_OF[plural]
        if body is None:
            return {}
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        known = meta.get("resourceVersion")
        current: Mapping[str, Any] | None = self.unseen.freshest(kind, namespace, name, dict(body))
        for _ in range(self.attempts):
            if current is None or (current["metadata"].get("deletionTimestamp") and not deleting):
                return {}
            status = dict(current.get("status") or {})
            patch = compute(status, current)
            if not patch:
                return {}
            patch = completed_status_patch(kind, status, current["metadata"], patch)
            before = current["metadata"].get("resourceVersion")
            try:
                response = await self.client.patch_status(plural, namespace, name, patch, before)
            except ApiError as e:
                if e.status != 409:
                    raise
            else:
                self.unseen.record(kind, namespace, name, (known, before), response)
                self._written.add((kind, namespace, name))
                return patch
            current = await self.read(plural, namespace, name)
        return {}

    async def write_named(self, plural: str, namespace: str, name: str, compute: Compute) -> dict[str, Any]:
        return await self.write(plural, await self.read(plural, namespace, name), compute)
