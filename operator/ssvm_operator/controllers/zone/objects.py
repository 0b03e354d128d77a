"""Pure builders of the custom objects the operator itself creates."""
from __future__ import annotations

from typing import Any, Mapping

from ssvm_operator import constants as c


def zone_ssvm_object(zone_meta: Mapping[str, Any], name: str, role: str) -> dict[str, Any]:
    """The SecondaryStorageVM for one slot of a zone: owned by the zone (GC and the zone's finalizer), labelled,
    created with kopf's finalizer already on it (kopf would otherwise add it with a patch of its own)."""
    return {
        "apiVersion": c.API_VERSION, "kind": c.SSVM_KIND,
        "metadata": {
            "name": name, "namespace": zone_meta["namespace"],
            "labels": {c.LABEL_ZONE: zone_meta["name"], c.LABEL_ROLE: role, c.LABEL_MANAGED_BY: c.MANAGED_BY},
            "finalizers": [c.FINALIZER],
            "ownerReferences": [{"apiVersion": c.API_VERSION, "kind": c.ZONE_KIND, "name": zone_meta["name"],
                                 "uid": zone_meta["uid"], "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {"zoneRef": zone_meta["name"], "role": role},
    }
