"""The spec hash of an SSVM's VM: digests of the template and offering it is built from, stamped on the
VM by its backend and compared by the zone's rolling update to tell what changed."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

_NOT_MATERIAL = ("ha",)   # the offering's HA flag is a restart policy, not part of the VM


def _normalized(model: Any, raw: Mapping[str, Any] | None, drop: Sequence[str] = ()) -> Any:
    """The value with defaults removed, so a stored default and an omitted field hash the same."""
    try:
        out = model.model_validate(raw or {}).model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    except ValueError:
        out = dict(raw or {})   # an invalid spec still gets a stable hash; the backend reports the error
    for key in drop:
        out.pop(key, None)
    return out


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def material_parts(zone_spec: Mapping[str, Any], ssvm_spec: Mapping[str, Any] | None) -> tuple[str, str]:
    """(template digest, offering digest) as resolved for one SSVM: its overrides, else the zone's."""
    from ssvm_operator.api.zone import ExternalTemplate, KubeVirtTemplate, Offering
    ss = zone_spec.get("secondaryStorage") or {}
    backend = ss.get("backend", "kubevirt")
    model = ExternalTemplate if backend == "external" else KubeVirtTemplate
    override = ((ssvm_spec or {}).get("template") or {}).get(backend)
    template = _normalized(model, override or (ss.get("template") or {}).get(backend))
    offering = _normalized(Offering, (ssvm_spec or {}).get("offering") or ss.get("offering"), _NOT_MATERIAL)
    return _digest(template), _digest(offering)


def material_hash(zone_spec: Mapping[str, Any], ssvm_spec: Mapping[str, Any] | None) -> str:
    """`<template digest>.<offering digest>`: stamped on the VM, compared part by part to say what changed."""
    return ".".join(material_parts(zone_spec, ssvm_spec))
