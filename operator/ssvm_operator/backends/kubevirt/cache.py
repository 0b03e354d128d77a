"""VirtualMachines and VirtualMachineInstances as the operator's watch (or the backend's last GET) showed
them, so observing a VM mostly costs no request. What the watch showed is answered while its stream
goes on (a resumed stream replays every change); a re-list (kopf's events without a type, after a 410)
can miss a deletion, so what it has not shown again is read with a GET. `ttl` bounds any answer as a
backstop, a GET's own answer is kept `get_ttl`, and what the backend itself wrote or deleted is read
from the API until the watch shows that change. A miss is always safe: it costs one GET. A GET's
answer is kept unless an event or a write came while it was on its way. Only what the backend reads of an
object is kept (`kept_of`).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ssvm_operator.model.snapshot import json_copy

Listener = Callable[[str, str], None]   # (namespace, name) of a VM whose VM or instance changed
Key = tuple[str, str, str]              # (plural, namespace, name)
ABSENT: dict[str, Any] = {}             # the watch showed the object deleted
_UNKNOWN: dict[str, Any] = {}           # written or dropped by the backend: ask the API; older events stay out
TTL = 300.0                             # seconds at most an answer is trusted without a new event
GET_TTL = 5.0                           # seconds a GET's answer is: the watch has not shown that object yet


def kept_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the backend reads of a VM or an instance (metadata, status, the VM's run strategy and cloud-init
    volume), copied: a VM's template and an instance's domain, thousands of times over, stay out of memory."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    out: dict[str, Any] = {"metadata": meta, "status": body.get("status") or {}}
    spec = body.get("spec") or {}
    wanted = {k: spec[k] for k in ("runStrategy", "running") if k in spec}
    volumes = [v for v in ((spec.get("template") or {}).get("spec") or {}).get("volumes") or () if v.get("cloudInitNoCloud")]
    if volumes:
        wanted["template"] = {"spec": {"volumes": volumes}}
    if wanted:
        out["spec"] = wanted
    return json_copy(out)


def _rv(body: Mapping[str, Any]) -> int | None:
    value = (body.get("metadata") or {}).get("resourceVersion")
    return int(value) if isinstance(value, str) and value.isdigit() else None


class VMCache:
    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic, get_ttl: float = GET_TTL) -> None:
        self.ttl, self.get_ttl, self.clock = ttl, get_ttl, clock
        self._objects: dict[Key, tuple[int | None, dict[str, Any], float, int]] = {}   # (rv, body, trusted until, listing)
        self._listings: dict[str, int] = {}      # per plural: how many listings the watch began
        self._last_type: dict[str, str | None] = {}
        self._changes: dict[Key, int] = {}   # how often each entry changed: a GET's answer is kept only if none came meanwhile
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def lookup(self, plural: str, namespace: str, name: str, shared: bool = False) -> dict[str, Any] | None:
        """The object (a copy; `shared`: the kept one, for a reader that changes nothing), ABSENT when shown
        deleted, None when unknown or too old (ask the API)."""
        entry = self._objects.get((plural, namespace, name))
        if (entry is None or entry[1] is _UNKNOWN or self.clock() >= entry[2]
                or entry[3] != self._listings.get(plural, 0)):
            return None
        return entry[1] if entry[1] is ABSENT or shared else json_copy(entry[1])

    def seen(self, plural: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event; an answer older than what is kept (our own write's) is ignored."""
        if event_type is None and self._last_type.get(plural, "") is not None:
            self._listings[plural] = self._listings.get(plural, 0) + 1   # a (re)listing: what it does not show may be gone
        self._last_type[plural] = event_type
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if not namespace or not name:
            return
        if not self._put(plural, namespace, name, dict(body), ABSENT if event_type == "DELETED" else None):
            return
        for listener in list(self._listeners):
            listener(namespace, name)

    def wrote(self, plural: str, body: Mapping[str, Any] | None) -> None:
        """The answer of the backend's own create or patch: until the watch shows it (or newer), the API is asked."""
        if body:
            meta = body["metadata"]
            self._put(plural, meta["namespace"], meta["name"], dict(body), _UNKNOWN)

    def dropped(self, plural: str, namespace: str, name: str) -> None:
        """The backend deleted it (or asked for it to go): the next look asks the API."""
        key = (plural, namespace, name)
        kept = self._objects.get(key)
        if kept is not None:
            self._objects[key] = (kept[0], _UNKNOWN, kept[2], kept[3])
        self._changes[key] = self._changes.get(key, 0) + 1   # a GET already on its way may predate the deletion

    def reading(self, plural: str, namespace: str, name: str) -> int:
        """Call before a GET; hand the result to `read` with the GET's answer."""
        return self._changes.get((plural, namespace, name), 0)

    def read(self, plural: str, namespace: str, name: str, body: Mapping[str, Any] | None, since: int) -> None:
        """A GET's answer (None: not found), kept `get_ttl` seconds unless the entry changed while it was on its way."""
        if self._changes.get((plural, namespace, name), 0) == since:
            self._put(plural, namespace, name, dict(body or {}), None if body else ABSENT, self.get_ttl)

    def _put(self, plural: str, namespace: str, name: str, body: dict[str, Any], value: dict[str, Any] | None,
             ttl: float | None = None) -> bool:
        """Keeps `body` (or `value` for it) unless what is kept is newer."""
        key = (plural, namespace, name)
        rv, kept = _rv(body), self._objects.get(key)
        if kept is not None and rv is not None and kept[0] is not None and rv < kept[0]:
            return False
        self._objects[key] = (rv if rv is not None else (kept[0] if kept else None),
                              kept_of(body) if value is None else value, self.clock() + (self.ttl if ttl is None else ttl),
                              self._listings.get(plural, 0))
        self._changes[key] = self._changes.get(key, 0) + 1
        return True
