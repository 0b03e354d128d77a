"""Every condition an object will carry, present from its first status write: the ones no controller
has evaluated yet are `Unknown/Initializing`. The status writer completes each write with them, so an
object's first write (by whichever controller) is also its initialisation; the status initialiser
writes them alone only for an object no controller has written to after a grace period.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator.api.crd import kind_info
from ssvm_operator.model.conditions import initial_conditions

# Kinds whose reconcile loop writes observedGeneration itself, once it has acted on that generation:
# setting it before they have would tell Argo CD and `kubectl wait` a change is done when it is not.
GENERATION_OWNED = frozenset({c.ZONE_KIND, c.SSVM_KIND, c.TEMPLATE_KIND})


def initial_status_patch(status: Mapping[str, Any], meta: Mapping[str, Any], types: Iterable[str],
                         owns_generation: bool = True) -> dict[str, Any]:
    """The missing conditions (Unknown, Initializing) and, where this kind lets it, observedGeneration; {} when none."""
    generation = meta.get("generation")
    conditions = initial_conditions(status.get("conditions"), types, generation)
    patch: dict[str, Any] = {}
    if conditions != list(status.get("conditions") or []):
        patch["conditions"] = conditions
        if owns_generation or "observedGeneration" not in status:
            patch["observedGeneration"] = generation
    elif owns_generation and status.get("observedGeneration") != generation:
        # generation alone: rewriting the (possibly stale) condition list would undo the reconcilers' newer writes
        patch["observedGeneration"] = generation
    return patch


def kind_initial_status_patch(kind: str, status: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """`initial_status_patch` with the kind's own condition types and generation ownership."""
    return initial_status_patch(status, meta, tuple(kind_info(kind).model.CONDITIONS), kind not in GENERATION_OWNED)


def completed_status_patch(kind: str, status: Mapping[str, Any], meta: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`patch` plus what the object would still lack once it is applied (missing conditions, observedGeneration)."""
    after = {**status, **patch}
    missing = kind_initial_status_patch(kind, after, meta)
    if "observedGeneration" in missing and "observedGeneration" in patch:
        del missing["observedGeneration"]   # the writer's own generation stands
    return {**patch, **missing}
