"""Our own writes that the watch has not shown yet.

kopf's bodies and indexes lag behind what the operator itself just wrote. Acting on a lagging view
would create an SSVM twice, issue a second replacement, or carry out a reboot token again. This one
record remembers, per object, the answer of our last write (used instead of any version we wrote over
or any older one), objects we created that an index does not list yet, and reboot/recreate tokens
carried out whose acknowledgement the watch has not shown. Entries expire after `ttl` seconds, except
carried-out tokens, which stay until the object shows their acknowledgement or is forgotten.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ssvm_operator.model.snapshot import json_copy

Key = tuple[str, str, str]   # (kind, namespace, name)


@dataclass
class _Entry:
    response: dict[str, Any]
    stale: set[str] = field(default_factory=set)
    at: float = 0.0
    group: tuple[str, str] | None = None   # (namespace, owner) of an object we created


def _rv(body: Mapping[str, Any] | None) -> str | None:
    return ((body or {}).get("metadata") or {}).get("resourceVersion")


def _older(rv: str | None, than: str | None) -> bool:
    """Whether `rv` is older than `than`; only knowable for the integer versions etcd-backed servers give."""
    return bool(rv and than and rv.isdigit() and than.isdigit() and int(rv) < int(than))


class UnseenWrites:
    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._writes: dict[Key, _Entry] = {}
        self._created: dict[tuple[str, str, str], set[str]] = {}   # (kind, namespace, owner) -> names: no scan of all writes
        self._acted: dict[Key, dict[str, str]] = {}

    # --- writes ---
    def record(self, kind: str, namespace: str, name: str, written_over: Iterable[str | None], response: Mapping[str, Any],
               *, created_for: str | None = None) -> None:
        """The answer of a write over the versions we knew; `created_for` names the owner of a new object."""
        key = (kind, namespace, name)
        previous = self._writes.get(key)
        stale = (previous.stale if previous else set()) | {rv for rv in written_over if rv}
        group = (namespace, created_for) if created_for else (previous.group if previous else None)
        if previous is not None and previous.group not in (None, group):
            self._drop(key)
        self._writes[key] = _Entry(json_copy(dict(response)), stale, self.clock(), group)
        if group is not None:
            self._created.setdefault((kind, *group), set()).add(name)

    def _drop(self, key: Key) -> None:
        entry = self._writes.pop(key, None)
        if entry is not None and entry.group is not None:
            names = self._created.get((key[0], *entry.group))
            if names is not None:
                names.discard(key[2])
                if not names:
                    del self._created[(key[0], *entry.group)]

    def _live(self, key: Key) -> _Entry | None:
        entry = self._writes.get(key)
        if entry is not None and self.clock() - entry.at > self.ttl:
            self._drop(key)
            return None
        return entry

    def freshest(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """`body` as a watch or index shows it, or our last write's answer while the view is older."""
        entry = self._live((kind, namespace, name))
        if entry is None:
            return body
        rv = _rv(body)
        if rv in entry.stale or _older(rv, _rv(entry.response)):
            return json_copy(entry.response)
        if rv != _rv(entry.response):
            self._drop((kind, namespace, name))   # the view has moved past our write
        return body

    def created_not_listed(self, kind: str, namespace: str, owner: str, listed: Iterable[str]) -> list[dict[str, Any]]:
        """Objects we created for `owner` that an index does not list yet."""
        shown = set(listed)
        out = []
        for name in sorted(self._created.get((kind, namespace, owner), ())):
            entry = self._live((kind, namespace, name))
            if entry is not None and name not in shown:
                out.append(json_copy(entry.response))
        return out

    # --- carried-out tokens ---
    def acted(self, kind: str, namespace: str, name: str, what: str, token: str) -> None:
        self._acted.setdefault((kind, namespace, name), {})[what] = token

    def was_acted(self, kind: str, namespace: str, name: str, what: str, token: str | None) -> bool:
        return bool(token) and self._acted.get((kind, namespace, name), {}).get(what) == token

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._drop((kind, namespace, name))
        self._acted.pop((kind, namespace, name), None)

    def forget_owner(self, kind: str, namespace: str, owner: str) -> None:
        for name in list(self._created.get((kind, namespace, owner), ())):
            self._drop((kind, namespace, name))
