"""Status initialisation: every condition an object will carry is present (Unknown) from the first moment.

The reconcile handlers of each kind refine these; this guarantees `status` is never empty, even for an
object whose reconcile fails before it can say anything. It runs on watch events (kopf stores nothing
for those: no annotation write per object or per spec change) and writes through the status writer
only what is missing.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from ssvm_operator import constants as c
from ssvm_operator.api.crd import KINDS
from ssvm_operator.controllers import ids
from ssvm_operator.kube.client import ApiError
from ssvm_operator.kube.context import Kube
from ssvm_operator.model.conditions import initial_conditions

# Kinds whose reconcile loop writes observedGeneration itself, once it has acted on that generation:
# setting it here, before they have, would tell Argo CD and `kubectl wait` a change is done when it is not.
GENERATION_OWNED = frozenset({c.ZONE_KIND, c.SSVM_KIND})
# Kinds kopf puts its finalizer on: their first status write waits for it (kopf adds it in the same cycle,
# with a patch that fails if the object changed in between).
FINALIZED = frozenset({c.ZONE_KIND, c.SSVM_KIND})


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


class StatusInitializer:
    def __init__(self, kube: Kube, plural: str, types: tuple[str, ...], owns_generation: bool, finalized: bool) -> None:
        self.kube, self.plural, self.types, self.owns_generation, self.finalized = kube, plural, types, owns_generation, finalized

    def compute(self, status: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
        return initial_status_patch(status, body["metadata"], self.types, self.owns_generation)

    async def on_event(self, type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata", {})
        if type == "DELETED" or not meta.get("namespace") or not self.compute(body.get("status") or {}, body):
            return   # the usual case: a cheap look at the event's body, no request
        if self.finalized and c.FINALIZER not in (meta.get("finalizers") or ()) and not meta.get("deletionTimestamp"):
            return   # kopf's finalizer patch comes first; its event brings this handler again
        try:
            await self.kube.status.write(self.plural, dict(body), self.compute)
        except ApiError:
            pass   # the object's next event brings this handler again


def register(registry: kopf.OperatorRegistry, kube: Kube) -> None:
    for info in KINDS:
        init = StatusInitializer(kube, info.plural, tuple(info.model.CONDITIONS), info.kind not in GENERATION_OWNED,
                                 info.kind in FINALIZED)
        kopf.on.event(c.GROUP, c.VERSION, info.plural, id=ids.INIT_STATUS[info.kind], registry=registry)(init.on_event)
