"""Copies of API objects (parsed JSON: dicts, lists, scalars) for a pass to work on: copy.deepcopy's memo
and dispatch cost three times as much, and the loops copy an object on every pass."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

_SCALARS = frozenset({str, int, float, bool, type(None)})


def json_copy(value: Any) -> Any:
    """A deep copy of dicts and lists (any other Mapping, a kopf view, becomes a dict); JSON scalars are shared."""
    kind = type(value)
    if kind is dict:
        return {k: json_copy(v) for k, v in value.items()}
    if kind is list:
        return [json_copy(v) for v in value]
    if kind in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {k: json_copy(v) for k, v in value.items()}
    return copy.deepcopy(value)   # not parsed JSON: the general, slower way
