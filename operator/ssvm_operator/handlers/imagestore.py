"""ImageStore handlers: an index of stores per zone (so a new store reaches its zone's loop at once),
and `ZoneFound=False` for a store whose zone does not exist (the zone's loop sets it True).
"""
from __future__ import annotations

import copy
from typing import Any

import kopf

from .. import constants as c
from ..conditions import find_condition, set_condition
from . import ids
from .kubeapi import ApiError
from .runtime import Runtime


def index_store(namespace: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    meta, spec = body.get("metadata", {}), body.get("spec") or {}
    return {(namespace, spec.get("zoneRef", "")): {
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "generation", "resourceVersion", "deletionTimestamp")},
        "spec": copy.deepcopy(dict(spec)),
        "status": {"conditions": copy.deepcopy(list((body.get("status") or {}).get("conditions") or []))},
    }}


async def on_store_event(type: str | None, namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, zones_by_name: kopf.Index,
                         **_: Any) -> None:
    rt: Runtime | None = memo.get("runtime")
    zone = (body.get("spec") or {}).get("zoneRef")
    if rt is None or not zone or not namespace:
        return
    rt.wake(c.ZONE_KIND, namespace, zone)
    if type == "DELETED" or (namespace, zone) in zones_by_name:
        return
    conds = (body.get("status") or {}).get("conditions") or []
    found = find_condition(conds, "ZoneFound")
    if found and found.get("reason") == "ZoneNotFound":
        return
    new = set_condition(conds, "ZoneFound", "False", "ZoneNotFound", f"No Zone {zone} in namespace {namespace}.",
                        body["metadata"].get("generation"))
    try:
        await rt.api.patch_status(c.IMAGESTORE_PLURAL, namespace, name, {"conditions": new}, body["metadata"].get("resourceVersion"))
    except ApiError:
        pass   # a conflict brings a newer event, and this handler again


def register(registry: kopf.OperatorRegistry) -> None:
    g, v, p = c.GROUP, c.VERSION, c.IMAGESTORE_PLURAL
    kopf.index(g, v, p, id=ids.STORES_INDEX, registry=registry)(index_store)
    kopf.on.event(g, v, p, id=ids.STORE_EVENT, registry=registry)(on_store_event)
