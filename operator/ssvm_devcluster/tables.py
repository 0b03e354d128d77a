"""Server-side printing (`meta.k8s.io/v1 Table`) so `kubectl get` shows the CRDs' printer columns."""
from __future__ import annotations

import datetime
import re
from typing import Any

from ssvm_devcluster.registry import ResourceType

_TOKEN = re.compile(r'\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*["\']([^"\']*)["\']\)\]|\[\*\]')


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def jsonpath(obj: Any, expr: str) -> list[Any]:
    """The subset of JSONPath printer columns use: fields, indexes, [*] and [?(@.a=="b")] filters."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    if expr.startswith("$"):
        expr = expr[1:]
    current = [obj]
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            return []
        pos = m.end()
        field, index, fkey, fval = m.groups()
        nxt: list[Any] = []
        for item in current:
            if field is not None and isinstance(item, dict) and field in item:
                nxt.append(item[field])
            elif index is not None and isinstance(item, list) and int(index) < len(item):
                nxt.append(item[int(index)])
            elif fkey is not None and isinstance(item, list):
                for el in item:
                    val: Any = el
                    for part in fkey.split("."):
                        val = val.get(part) if isinstance(val, dict) else None
                    if val is not None and str(val) == fval:
                        nxt.append(el)
            elif m.group(0) == "[*]" and isinstance(item, list):
                nxt.extend(item)
        current = nxt
    return current


def human_age(timestamp: str | None) -> str:
    """Kubernetes' duration.HumanDuration, as the `AGE` column shows it."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    secs = int((datetime.datetime.now(tz=datetime.timezone.utc) - then).total_seconds())
    if secs < 0:
        return "<invalid>"
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    return f"{days}d{hours % 24}h" if days < 8 and hours % 24 else f"{days}d"


def _cell(obj: dict[str, Any], col: dict[str, Any]) -> Any:
    values = jsonpath(obj, col.get("jsonPath", ""))
    if not values:
        return None
    if col.get("type") == "date":
        return human_age(values[0] if isinstance(values[0], str) else None)
    if len(values) == 1:
        v = values[0]
        if isinstance(v, (dict, list)):
            import json
            return json.dumps(v, separators=(",", ":"))
        return v
    return ",".join(str(v) for v in values)


def _columns(rt: ResourceType, version: str) -> list[dict[str, Any]]:
    cols = rt.columns.get(version) or []
    if cols:
        return [{"name": "Name", "type": "string", "jsonPath": ".metadata.name", "format": "name",
                 "description": "Name must be unique within a namespace."}] + [
            {"name": c["name"], "type": c.get("type", "string"), "jsonPath": c.get("jsonPath", ""),
             "format": c.get("format", ""), "description": c.get("description", ""), "priority": c.get("priority", 0)}
            for c in cols]
    extra = [{"name": "Status", "type": "string", "jsonPath": ".status.phase"}] if rt.kind == "Namespace" else []
    return ([{"name": "Name", "type": "string", "jsonPath": ".metadata.name", "format": "name",
              "description": "Name must be unique within a namespace."}] + extra +
            [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
              "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}])


def to_table(rt: ResourceType, version: str, objs: list[dict[str, Any]], list_meta: dict[str, Any]) -> dict[str, Any]:
    cols = _columns(rt, version)
    rows = [{"cells": [_cell(o, c) for c in cols], "object": {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata", {})}}
        for o in objs]
    defs = [{"name": c["name"], "type": "string" if c["type"] == "date" else c["type"], "format": c.get("format", ""),
             "description": c.get("description", ""), "priority": c.get("priority", 0)} for c in cols]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": defs, "rows": rows}
