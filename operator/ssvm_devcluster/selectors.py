"""Label and field selectors, with the syntax and semantics of the Kubernetes API."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ssvm_devcluster import errors

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_CMP_RE = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


def _split_top(selector: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value lists."""
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p for p in parts if p.strip()]


def parse_labels(selector: str | None) -> Matcher:
    if not selector:
        return lambda labels: True
    reqs: list[Matcher] = []
    for part in _split_top(selector):
        m = _CMP_RE.match(part)
        if m:
            key, op, val = m.groups()
            if op == "!=":
                reqs.append(lambda lb, k=key, v=val: lb.get(k) != v)
            else:
                reqs.append(lambda lb, k=key, v=val: k in lb and lb[k] == v)
            continue
        m = _SET_RE.match(part)
        if not m:
            raise errors.bad_request(f"unable to parse requirement: {part.strip()!r}: invalid label selector")
        neg, key, op, values = m.groups()
        vals = {v.strip() for v in (values or "").split(",") if v.strip()}
        if op == "in":
            reqs.append(lambda lb, k=key, vs=vals: k in lb and lb[k] in vs)
        elif op == "notin":
            reqs.append(lambda lb, k=key, vs=vals: lb.get(k) not in vs)
        elif neg:
            reqs.append(lambda lb, k=key: k not in lb)
        else:
            reqs.append(lambda lb, k=key: k in lb)
    return lambda labels: all(req(labels) for req in reqs)


def _field(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def parse_fields(selector: str | None, namespaced: bool) -> Matcher:
    """`metadata.name`, `metadata.namespace`, and for any kind a dotted path (events' involvedObject.*)."""
    if not selector:
        return lambda obj: True
    reqs: list[Matcher] = []
    for part in _split_top(selector):
        m = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise errors.bad_request(f'invalid selector: \'{selector}\'; can\'t understand \'{part}\'')
        path, op, val = m.groups()
        if path == "metadata.namespace" and not namespaced:
            raise errors.bad_request(f'field label not supported: {path}')
        if op == "!=":
            reqs.append(lambda o, p=path, v=val: str(_field(o, p) or "") != v)
        else:
            reqs.append(lambda o, p=path, v=val: str(_field(o, p) or "") == v)
    return lambda obj: all(req(obj) for req in reqs)


def object_matcher(label_selector: str | None, field_selector: str | None, namespaced: bool) -> Matcher:
    labels = parse_labels(label_selector)
    fields = parse_fields(field_selector, namespaced)
    return lambda obj: labels(obj.get("metadata", {}).get("labels") or {}) and fields(obj)
