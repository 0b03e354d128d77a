"""The VM request of an SSVM: what its backend must create, from the SSVM and its zone, with the keys
filled in when the backend's VMs have guests (the pinned host key, the operator's public keys)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator.backends.base import BackendError
from ssvm_operator.controllers.keys.secrets import HostKey, KeyMaterialError, KeyStore
from ssvm_operator.model.bootargs import build_boot_args
from ssvm_operator.model.spec_hash import material_hash
from ssvm_operator.model.vm import VMRequest


def build_vm_request(ssvm: Mapping[str, Any], zone: Mapping[str, Any], running: bool) -> VMRequest:
    """The VM request from the SSVM and its zone, without key material."""
    meta, spec = ssvm["metadata"], ssvm.get("spec") or {}
    zone_name, zone_spec = zone["metadata"]["name"], zone.get("spec") or {}
    role = spec.get("role", "templateProcessor")
    return VMRequest(namespace=meta["namespace"], name=meta["name"], uid=meta.get("uid", ""), zone_name=zone_name,
                     role=role, running=running, zone_spec=zone_spec, ssvm_spec=spec,
                     boot_args=build_boot_args(name=meta["name"], zone_name=zone_name, role=role, zone_spec=zone_spec),
                     spec_hash=material_hash(zone_spec, spec),
                     labels={c.LABEL_ZONE: zone_name, c.LABEL_ROLE: role, c.LABEL_SSVM: meta["name"]})


class VMRequestBuilder:
    """Builds VM requests; with `keys`, fills in the host key Secret's key and the operator's public keys."""

    def __init__(self, keys: KeyStore | None = None) -> None:
        self.keys = keys

    async def build(self, ssvm: Mapping[str, Any], zone: Mapping[str, Any], running: bool) -> VMRequest:
        try:
            base = build_vm_request(ssvm, zone, running)
        except ValueError as e:   # a stored zone spec the models refuse (written around admission)
            raise BackendError("InvalidZoneSpec", f"the zone's spec cannot be turned into boot arguments: {e}"[:500],
                               retry_after=60.0) from None
        if self.keys is None:
            return base
        external = ((zone.get("spec") or {}).get("secondaryStorage") or {}).get("backend") == "external"
        try:
            # an external host has its own key, pinned in the zone: no per-SSVM host key Secret
            host = HostKey("", "") if external else await self.keys.host_key(ssvm)
            op = await self.keys.operator_keys(zone)
        except KeyMaterialError as e:
            raise BackendError(e.reason, e.message, retry_after=5.0) from None
        # mid-rotation a new VM gets both keys, so it is ready for the promotion whichever comes first
        return dataclasses.replace(base, host_public_key=host.public, host_private_key=host.private,
                                   operator_public_key="\n".join(k.public for k in op.ring))
