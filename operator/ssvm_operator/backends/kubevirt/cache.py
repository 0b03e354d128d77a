"""VirtualMachines and VirtualMachineInstances as the operator's watch last showed them, so observing a
VM costs no request. Only what the watch showed is answered: an object it has not shown is read with a
GET (a miss is always safe), and so is one the backend itself wrote or deleted until the watch shows that
change, so a lagging, stalled or missing watch costs requests, never a stale answer.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

Listener = Callable[[str, str], None]   # (namespace, name) of a VM whose VM or instance changed
Key = tuple[str, str, str]              # (plural, namespace, name)
ABSENT: dict[str, Any] = {}             # the watch showed the object deleted
_UNKNOWN: dict[str, Any] = {}           # written or dropped by the backend: ask the API; older events stay out


def _rv(body: Mapping[str, Any]) -> int | None:
    value = (body.get("metadata") or {}).get("resourceVersion")
    return int(value) if isinstance(value, str) and value.isdigit() else None


class VMCache:
    def __init__(self) -> None:
        self._objects: dict[Key, tuple[int | None, dict[str, Any]]] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def lookup(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object (a copy), ABSENT when the watch showed it deleted, None when unknown (ask the API)."""
        entry = self._objects.get((plural, namespace, name))
        if entry is None or entry[1] is _UNKNOWN:
            return None
        return ABSENT if entry[1] is ABSENT else copy.deepcopy(entry[1])

    def seen(self, plural: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event; an answer older than what is kept (our own write's) is ignored."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        if not namespace or not name:
            return
        if not self._put(plural, dict(body), ABSENT if event_type == "DELETED" else None):
            return
        for listener in list(self._listeners):
            listener(namespace, name)

    def wrote(self, plural: str, body: Mapping[str, Any] | None) -> None:
        """The answer of the backend's own create or patch: until the watch shows it (or newer), the API is asked,
        so a missing or stalled watch never leaves a stale answer."""
        if body:
            self._put(plural, dict(body), _UNKNOWN)

    def dropped(self, plural: str, namespace: str, name: str) -> None:
        """The backend deleted it (or asked for it to go): the next look asks the API."""
        kept = self._objects.get((plural, namespace, name))
        if kept is not None:
            self._objects[(plural, namespace, name)] = (kept[0], _UNKNOWN)

    def _put(self, plural: str, body: dict[str, Any], value: dict[str, Any] | None = None) -> bool:
        """Keeps `body` (or `value` for it) unless what is kept is newer."""
        meta = body["metadata"]
        key = (plural, meta["namespace"], meta["name"])
        rv, kept = _rv(body), self._objects.get(key)
        if kept is not None and rv is not None and kept[0] is not None and rv < kept[0]:
            return False
        self._objects[key] = (rv, copy.deepcopy(body) if value is None else value)
        return True
