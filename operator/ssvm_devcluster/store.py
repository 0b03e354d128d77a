"""In-memory object storage with one global, monotonic resourceVersion and watch fan-out.

Every method is synchronous and runs on the server's event loop, so no write interleaves with
another; watchers receive events through per-watch queues.
"""
from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import datetime
import uuid
from typing import Any

Key = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace or "", name)

HISTORY_LIMIT = 50_000  # watch events kept per resource to resume watches from a resourceVersion


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED MODIFIED DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None = None
    encoded: dict[tuple[str, str], bytes] = dataclasses.field(default_factory=dict, compare=False, repr=False)


class Watcher:
    def __init__(self, key: Key, namespace: str | None) -> None:
        self.key = key
        self.namespace = namespace
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()

    def offer(self, event: Event) -> None:
        if self.namespace is None or event.obj.get("metadata", {}).get("namespace") == self.namespace:
            self.queue.put_nowait(event)


class Store:
    def __init__(self, history_limit: int = HISTORY_LIMIT) -> None:
        self.rv = 1
        self.objects: dict[Key, dict[ObjKey, dict[str, Any]]] = collections.defaultdict(dict)
        self.history: dict[Key, collections.deque[Event]] = collections.defaultdict(
            lambda: collections.deque(maxlen=history_limit))
        self.compacted: dict[Key, int] = collections.defaultdict(int)
        self.watchers: dict[Key, set[Watcher]] = collections.defaultdict(set)

    # --- reads (return the stored dicts: callers must not mutate them) ---
    def get(self, key: Key, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects[key].get((namespace or "", name))

    def list(self, key: Key, namespace: str | None = None) -> list[dict[str, Any]]:
        objs = self.objects[key]
        if namespace is None:
            return list(objs.values())
        return [o for (ns, _), o in objs.items() if ns == namespace]

    def all_keys(self) -> list[Key]:
        return [k for k, objs in self.objects.items() if objs]

    # --- writes: each bumps the global resourceVersion and notifies watchers ---
    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def insert(self, key: Key, obj: dict[str, Any], *, generation: bool) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        if generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        meta["resourceVersion"] = self._next_rv()
        self.objects[key][(meta.get("namespace") or "", meta["name"])] = obj
        self._publish(key, Event(self.rv, "ADDED", obj))
        return obj

    def replace(self, key: Key, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Store `new` (already prepared by the caller, it is owned by the store from now on)."""
        meta = new["metadata"]
        meta["resourceVersion"] = self._next_rv()
        self.objects[key][(meta.get("namespace") or "", meta["name"])] = new
        self._publish(key, Event(self.rv, "MODIFIED", new, old))
        return new

    def remove(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.objects[key].pop((meta.get("namespace") or "", meta["name"]), None)
        gone = {**obj, "metadata": {**meta, "resourceVersion": self._next_rv()}}
        self._publish(key, Event(self.rv, "DELETED", gone, obj))
        return gone

    def drop_resource(self, key: Key) -> list[dict[str, Any]]:
        """Forget every object of a resource (its CRD was deleted); watchers see them deleted."""
        removed = [self.remove(key, o) for o in list(self.objects[key].values())]
        for w in list(self.watchers[key]):
            w.queue.put_nowait(None)  # end the watch, as a real server does when a CRD goes away
        return removed

    def _publish(self, key: Key, event: Event) -> None:
        hist = self.history[key]
        if len(hist) == hist.maxlen:
            self.compacted[key] = hist[0].rv
        hist.append(event)
        for w in self.watchers[key]:
            w.offer(event)

    # --- watches ---
    def subscribe(self, key: Key, namespace: str | None, since: int | None) -> tuple[Watcher, list[Event]] | None:
        """Register a watcher; return the events after `since` to replay, or None if they are compacted."""
        if since is not None and since < self.compacted[key]:
            return None
        watcher = Watcher(key, namespace)
        self.watchers[key].add(watcher)
        replay: list[Event] = []
        if since is not None:
            replay = [e for e in self.history[key] if e.rv > since and (
                namespace is None or e.obj.get("metadata", {}).get("namespace") == namespace)]
        return watcher, replay

    def unsubscribe(self, watcher: Watcher) -> None:
        self.watchers[watcher.key].discard(watcher)
