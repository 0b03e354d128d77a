"""Deterministic SSVM names: `<zone>-ssvm-<slot>`, lowest free slot first.

Two operators (or one restarted mid-creation) compute the same name for the same slot, so the API's
409 on create is the allocation lock (CloudStack's `secStorageVm.alloc` global lock).
"""
from __future__ import annotations

import hashlib
import re
from typing import Container, Iterable

MAX_NAME = 63  # a DNS label: the name also becomes the VM's and its pod's host name
_SUFFIX = re.compile(r"-ssvm-([1-9][0-9]*)$")


def _zone_part(zone: str, room: int) -> str:
    if len(zone) <= room:
        return zone
    digest = hashlib.sha256(zone.encode()).hexdigest()[:8]  # keeps long zone names distinct when cut
    return f"{zone[:room - 9].rstrip('-.')}-{digest}"


def ssvm_name(zone: str, slot: int) -> str:
    if slot < 1:
        raise ValueError("slots start at 1")
    suffix = f"-ssvm-{slot}"
    return _zone_part(zone.replace(".", "-"), MAX_NAME - len(suffix)) + suffix


def slot_of(zone: str, name: str) -> int | None:
    """The slot of a name this zone would generate, None for any other name (e.g. a user's SSVM)."""
    match = _SUFFIX.search(name)
    if not match:
        return None
    slot = int(match.group(1))
    return slot if ssvm_name(zone, slot) == name else None


def free_slot_names(zone: str, taken: Iterable[str], count: int, held_elsewhere: Container[str] = ()) -> list[str]:
    """The `count` lowest-slot names not in `taken` (which holds every existing name, deleting ones too) nor
    `held_elsewhere` (names other zones' SSVMs use in the namespace)."""
    taken_set = set(taken)
    names: list[str] = []
    slot = 1
    while len(names) < count:
        name = ssvm_name(zone, slot)
        if name not in taken_set and name not in held_elsewhere:
            names.append(name)
        slot += 1
    return names
