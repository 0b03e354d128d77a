"""Status initialisation: every condition an object will carry is present (Unknown) from the first moment.

The reconcile handlers of each kind refine these; this guarantees `status` is never empty, even for an
object whose reconcile fails before it can say anything.
"""
from __future__ import annotations

import functools
from typing import Any, Iterable, Mapping

import kopf

from ssvm_operator import constants as c
from ssvm_operator.api.crd import KINDS
from ssvm_operator.model.conditions import initial_conditions
from ssvm_operator.controllers import ids


# Kinds whose reconcile loop writes observedGeneration itself, once it has acted on that generation:
# setting it here, before they have, would tell Argo CD and `kubectl wait` a change is done when it is not.
GENERATION_OWNED = frozenset({c.ZONE_KIND, c.SSVM_KIND})


def initialize_status(status: Mapping[str, Any], meta: Mapping[str, Any], patch: kopf.Patch, types: Iterable[str],
                      owns_generation: bool = True) -> None:
    generation = meta.get("generation")
    conditions = initial_conditions(status.get("conditions"), types, generation)
    if conditions != list(status.get("conditions") or []):
        patch.status["conditions"] = conditions
        if owns_generation or "observedGeneration" not in status:
            patch.status["observedGeneration"] = generation
    elif owns_generation and status.get("observedGeneration") != generation:
        # generation alone: rewriting the (possibly stale) condition list would undo the reconcilers' newer writes
        patch.status["observedGeneration"] = generation


def _on_object(types: tuple[str, ...], owns_generation: bool, status: kopf.Status, meta: kopf.Meta, patch: kopf.Patch,
               **_: Any) -> None:
    initialize_status(status, meta, patch, types, owns_generation)


def register(registry: kopf.OperatorRegistry) -> None:
    for info in KINDS:
        handler = functools.partial(_on_object, tuple(info.model.CONDITIONS), info.kind not in GENERATION_OWNED)
        handler_id = ids.INIT_STATUS[info.kind]
        for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
            decorator(c.GROUP, c.VERSION, info.plural, id=handler_id, registry=registry)(handler)
