"""PATCH bodies: JSON merge patch, JSON patch, strategic merge patch (built-ins), apply patch."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonpatch
import jsonpointer

from ssvm_devcluster import errors

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

# Strategic-merge keys of built-in list fields, by field name (what kubectl's SMP relies on).
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "conditions": "type",
    "imagePullSecrets": "name", "ownerReferences": "uid", "hostAliases": "ip", "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey", "envFrom": None, "ports": "<port>",
}
# Primitive lists whose strategy is "merge" (union) rather than replace.
_MERGED_PRIMITIVES = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], ops: Any) -> dict[str, Any]:
    if not isinstance(ops, list):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        return jsonpatch.JsonPatch(ops).apply(copy.deepcopy(target))
    except jsonpatch.JsonPatchTestFailed as e:
        # kube-apiserver answers a failed `test` op with 422, and kopf relies on exactly that
        raise errors.unprocessable(f"the server rejected our request due to an error in our request: {e}")
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
        raise errors.unprocessable(f"the server rejected our request due to an error in our request: {e}")


def _merge_key(field: str, items: list[Any]) -> str | None:
    key = _MERGE_KEYS.get(field)
    if key == "<port>":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return key


def strategic_merge(target: Any, patch: Any, list_keys: dict[str, list[str]] | None = None) -> Any:
    """Strategic merge patch, as kubectl sends it for built-in kinds (directives included)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value, list_keys)
        else:
            merged = strategic_merge(result.get(key), value, list_keys)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, current: Any, patch: list[Any], list_keys: dict[str, list[str]] | None) -> list[Any]:
    current = list(current) if isinstance(current, list) else []
    if field in _MERGED_PRIMITIVES:
        merged = current + [v for v in patch if v not in current]
        return _element_order(merged, patch, current, lambda v: v) if list_keys is None else merged
    keys = (list_keys or {}).get(field)
    if keys is None:
        single = _merge_key(field, patch + current)
        keys = [single] if single else None
    if not keys or not all(isinstance(i, dict) for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch"))]

    def ident(item: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(item.get(k) for k in keys)

    result = list(current)
    for item in patch:
        idx = next((i for i, c in enumerate(result) if isinstance(c, dict) and ident(c) == ident(item)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
        elif idx is None:
            result.append(copy.deepcopy({k: v for k, v in item.items() if k != "$patch"}))
        else:
            result[idx] = strategic_merge(result[idx], item, list_keys)
    if list_keys is not None:
        return result
    return _element_order(result, [i for i in patch if i.get("$patch") != "delete"], current, ident)


def _element_order(merged: list[Any], patch: list[Any], original: list[Any], ident: Callable[[Any], Any]) -> list[Any]:
    """The order a strategic merge gives a merged list, as apimachinery's normalizeElementOrder does: the
    patch's items in the patch's order, the server's other items in theirs, interleaved where the original
    order says so; an item new to the original goes before the server-only items it meets."""
    patch_order = [ident(i) for i in patch]
    server_order = [ident(i) for i in original]
    right = sorted((m for m in merged if ident(m) in patch_order), key=lambda m: patch_order.index(ident(m)))
    left = [m for m in merged if ident(m) not in patch_order]
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right) or (i < len(left) and ident(right[j]) in server_order
                               and server_order.index(ident(left[i])) < server_order.index(ident(right[j]))):
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    return out


def list_map_keys(schema: dict[str, Any] | None) -> dict[str, list[str]]:
    """Field name -> x-kubernetes-list-map-keys, collected from a CRD schema (for apply patches)."""
    found: dict[str, list[str]] = {}

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, dict) and prop.get("x-kubernetes-list-type") == "map":
                found[name] = list(prop.get("x-kubernetes-list-map-keys") or [])
            walk(prop)
        walk(node.get("items"))
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"])

    walk(schema or {})
    return found
