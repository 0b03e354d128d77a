"""Garbage collection as kube-controller-manager does it: owner references (background,
foreground, orphan) and namespace termination. Runs as a task beside the API, asynchronously.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from ssvm_devcluster import errors
from ssvm_devcluster.registry import NAMESPACE_KEY, Registry, ResourceType
from ssvm_devcluster.store import Store
from ssvm_devcluster.writes import Writer

log = logging.getLogger(__name__)


class GarbageCollector:
    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self.writer: Writer | None = None
        self._wake = asyncio.Event()

    def notify(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        """Called by the writer on every removal or deletion start; the sweep runs later."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                continue
            self._wake.clear()
            # repeat until a sweep changes nothing: each deletion may free more dependents
            for _ in range(100):
                try:
                    if not self.sweep():
                        break
                except Exception:  # noqa: BLE001 - a GC bug must not stop the API server
                    log.exception("garbage collection sweep failed")
                    break
                await asyncio.sleep(0)

    def _live_uids(self) -> dict[str, tuple[ResourceType, dict[str, Any]]]:
        out = {}
        for key in self.store.all_keys():
            rt = self.registry.types.get(key)
            if rt is None:
                continue
            for obj in self.store.list(key):
                out[obj["metadata"]["uid"]] = (rt, obj)
        return out

    def sweep(self) -> bool:
        """One pass; True if anything changed."""
        assert self.writer is not None
        live = self._live_uids()
        changed = False
        dependents: dict[str, list[tuple[ResourceType, dict[str, Any]]]] = {}
        for rt, obj in live.values():
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents.setdefault(ref.get("uid", ""), []).append((rt, obj))
        for uid, (rt, obj) in list(live.items()):
            meta = obj["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            finalizers = meta.get("finalizers") or []
            deps = [d for d in dependents.get(uid, []) if d[1]["metadata"]["uid"] in live]
            if "orphan" in finalizers:
                for drt, dep in deps:
                    self._drop_owner(drt, dep, uid)
                self.writer.drop_finalizer(rt, obj, "orphan")
                changed = True
            elif "foregroundDeletion" in finalizers:
                pending = [d for d in deps if not d[1]["metadata"].get("deletionTimestamp")]
                for drt, dep in pending:
                    self._delete(drt, dep, "Foreground")
                if rt.key == NAMESPACE_KEY:
                    changed |= self._empty_namespace(meta["name"])
                    if self._namespace_has_content(meta["name"]):
                        continue
                elif deps:
                    changed |= bool(pending)
                    continue
                self.writer.drop_finalizer(rt, obj, "foregroundDeletion")
                changed = True
        # background: dependents whose owners are all gone
        for rt, obj in list(live.values()):
            refs = obj["metadata"].get("ownerReferences") or []
            if not refs or obj["metadata"].get("deletionTimestamp"):
                continue
            alive = [r for r in refs if r.get("uid") in live and live[r["uid"]][1]["metadata"]["uid"] == r.get("uid")]
            if not alive:
                self._delete(rt, obj, "Background")
                changed = True
        return changed

    def _delete(self, rt: ResourceType, obj: dict[str, Any], policy: str) -> None:
        assert self.writer is not None
        meta = obj["metadata"]
        try:
            self.writer.delete(rt, meta.get("namespace"), meta["name"], {"propagationPolicy": policy}, {})
        except errors.ApiError as e:
            if e.code != 404:
                log.warning("GC could not delete %s/%s: %s", rt.plural, meta["name"], e.message)

    def _drop_owner(self, rt: ResourceType, obj: dict[str, Any], owner_uid: str) -> None:
        import copy
        new = copy.deepcopy(obj)
        new["metadata"]["ownerReferences"] = [r for r in new["metadata"].get("ownerReferences") or []
                                              if r.get("uid") != owner_uid]
        if not new["metadata"]["ownerReferences"]:
            del new["metadata"]["ownerReferences"]
        self.store.replace(rt.key, obj, new)

    def _namespace_has_content(self, namespace: str) -> bool:
        return any(self.store.list(key, namespace) for key in self.store.all_keys()
                   if (rt := self.registry.types.get(key)) is not None and rt.namespaced)

    def _empty_namespace(self, namespace: str) -> bool:
        changed = False
        for key in self.store.all_keys():
            rt = self.registry.types.get(key)
            if rt is None or not rt.namespaced:
                continue
            for obj in self.store.list(key, namespace):
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(rt, obj, "Background")
                    changed = True
        return changed
