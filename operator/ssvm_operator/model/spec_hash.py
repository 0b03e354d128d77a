"""The spec hash of an SSVM's VM: digests of the template and offering it is built from, stamped on the
VM by its backend; comparing it with the wanted one says whether the VM is up to date, and if not, why."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ssvm_operator.model.views import CondSpec
from ssvm_operator.model.vm import ObservedVM, VMPhase

UP_TO_DATE = "UpToDate"   # the SSVM's condition
TEMPLATE_CHANGED = "TemplateChanged"
OFFERING_CHANGED = "OfferingChanged"
RESTART_REQUIRED = "RestartRequired"

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
    from ssvm_operator.api.zone import ExternalTemplate, KubeVirtTemplate, LibvirtTemplate, Offering
    ss = zone_spec.get("secondaryStorage") or {}
    backend = ss.get("backend", "kubevirt")
    model = {"external": ExternalTemplate, "libvirt": LibvirtTemplate}.get(backend, KubeVirtTemplate)
    override = ((ssvm_spec or {}).get("template") or {}).get(backend)
    template = _normalized(model, override or (ss.get("template") or {}).get(backend))
    if backend != "kubevirt":   # a move to another backend is a template change even when both templates are empty
        template = {"backend": backend, "template": template}
    offering = _normalized(Offering, (ssvm_spec or {}).get("offering") or ss.get("offering"), _NOT_MATERIAL)
    return _digest(template), _digest(offering)


def material_hash(zone_spec: Mapping[str, Any], ssvm_spec: Mapping[str, Any] | None) -> str:
    """`<template digest>.<offering digest>`: stamped on the VM, compared part by part to say what changed."""
    return ".".join(material_parts(zone_spec, ssvm_spec))


def outdated_reason(desired: str, observed: ObservedVM) -> str | None:
    """Why the VM does not run what the SSVM asks for (None: it does, or it cannot be told)."""
    if not desired or observed.phase == VMPhase.ABSENT or observed.spec_hash is None:
        return None
    if observed.spec_hash != desired:
        have, want = observed.spec_hash.split(".", 1) + [""], desired.split(".", 1)
        return TEMPLATE_CHANGED if have[0] != want[0] else OFFERING_CHANGED
    return RESTART_REQUIRED if observed.restart_required else None


def up_to_date_condition(desired: str, observed: ObservedVM) -> CondSpec:
    if observed.phase == VMPhase.ABSENT:
        return CondSpec(UP_TO_DATE, "Unknown", "VMNotCreated", "No VM exists yet.")
    if desired and observed.spec_hash is None:
        return CondSpec(UP_TO_DATE, "Unknown", "SpecHashUnknown",
                        "The VM carries no template/offering hash (made by an older operator); a recreateRequest gives it one.")
    reason = outdated_reason(desired, observed)
    if reason == TEMPLATE_CHANGED:
        return CondSpec(UP_TO_DATE, "False", reason, "The template changed: the VM is replaced in the zone's rolling update.")
    if reason == OFFERING_CHANGED:
        return CondSpec(UP_TO_DATE, "False", reason, "The offering changed: the VM is replaced in the zone's rolling update.")
    if reason == RESTART_REQUIRED:
        return CondSpec(UP_TO_DATE, "False", reason, "The VM's spec changed under its running instance: it is restarted in turn.")
    return CondSpec(UP_TO_DATE, "True", UP_TO_DATE, "The VM runs the current template and offering.")
