"""Kubernetes conditions, updated so that lastTransitionTime moves only when status does."""
from __future__ import annotations

import datetime
from typing import Any, Iterable, Mapping

INITIALIZING = "Initializing"


def utcnow() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_condition(conditions: Iterable[Mapping[str, Any]], type_: str, status: str, reason: str, message: str = "",
                  generation: int | None = None, now: str | None = None) -> list[dict[str, Any]]:
    """A new condition list with `type_` set (a new dict); the other conditions, shared, and their order are kept."""
    out: list[Any] = []
    found = False
    for cond in conditions:
        if cond.get("type") == type_:
            found = True
            cond = dict(cond)
            if cond.get("status") != status:
                cond["lastTransitionTime"] = now or utcnow()
            cond.update(status=status, reason=reason, message=message)
            if generation is not None:
                cond["observedGeneration"] = generation
        out.append(cond)
    if not found:
        new = {"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": now or utcnow()}
        if generation is not None:
            new["observedGeneration"] = generation
        out.append(new)
    return out


def find_condition(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def initial_conditions(existing: Iterable[Mapping[str, Any]] | None, types: Iterable[str], generation: int | None,
                       now: str | None = None) -> list[dict[str, Any]]:
    """Every condition the object will carry: existing ones kept, missing ones `Unknown/Initializing`."""
    out = [dict(c) for c in existing or ()]
    for type_ in types:
        if find_condition(out, type_) is None:
            out = set_condition(out, type_, "Unknown", INITIALIZING, "The operator has not evaluated this yet.", generation, now)
    return out
