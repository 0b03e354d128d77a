"""Which NICs an SSVM gets and in what order, from the zone's networks (CloudStack's
`createSecStorageVmInstance` placement): pure, shared by the boot arguments and the VM backends.

Device order follows CloudStack's system VMs: eth0 control, then management, then the default
NIC (public in Advanced zones, guest in Basic and security-group zones), then storage. A traffic
type whose network is not configured rides the pod (control) network, so it gets no NIC of its own
and the remaining devices are numbered without gaps (the guest names them eth0, eth1, ...).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

from ssvm_operator.api.zone import NetworkMapping, ZoneSpec

# Interface/network names in the VM; they also tell `observe` which traffic type a NIC carries.
CONTROL, MANAGEMENT, PUBLIC, GUEST, STORAGE = "control", "management", "public", "guest", "storage"

# SSVM status traffic types (status.nics keys) carried by each interface name.
TRAFFIC_OF_INTERFACE = {CONTROL: "control", MANAGEMENT: "private", PUBLIC: "public", GUEST: "public", STORAGE: "storage"}


@dataclass(frozen=True)
class PlannedNic:
    device_id: int                 # N of ethN in the guest
    name: str                      # interface and network name in the VM (control, management, ...)
    traffic: str                   # CloudStack traffic type: Control, Management, Public, Guest, Storage
    network_name: str | None       # Multus NetworkAttachmentDefinition; None for the pod network
    default: bool                  # carries the default route
    gateway: str | None = None
    cidr: str | None = None

    @property
    def netmask(self) -> str | None:
        return str(ipaddress.ip_network(self.cidr, strict=False).netmask) if self.cidr else None

    @property
    def is_pod(self) -> bool:
        return self.network_name is None


def as_zone_spec(zone_spec: ZoneSpec | Mapping[str, Any]) -> ZoneSpec:
    """The zone spec as a model, from a model or the stored (camelCase) dict."""
    return zone_spec if isinstance(zone_spec, ZoneSpec) else ZoneSpec.model_validate(dict(zone_spec))


def default_traffic(spec: ZoneSpec) -> str:
    """Traffic type of the default NIC: Guest for Basic and security-group zones, else Public (CloudStack's rule)."""
    return GUEST if spec.network_type == "Basic" or spec.security_groups_enabled else PUBLIC


def plan_nics(zone_spec: ZoneSpec | Mapping[str, Any]) -> list[PlannedNic]:
    """The SSVM's NICs in device order; the pod NIC is the default when the default network is unset."""
    spec = as_zone_spec(zone_spec)
    nets = spec.networks
    default_name = default_traffic(spec)
    default_mapping: NetworkMapping | None = getattr(nets, default_name)
    wanted: list[tuple[str, str, NetworkMapping | None]] = [
        (MANAGEMENT, "Management", nets.management),
        (default_name, "Guest" if default_name == GUEST else "Public", default_mapping),
        (STORAGE, "Storage", nets.storage),
    ]
    nics = [PlannedNic(0, CONTROL, "Control", None, default=default_mapping is None)]
    for name, traffic, mapping in wanted:
        if mapping is None:
            continue
        nics.append(PlannedNic(len(nics), name, traffic, mapping.network_name, default=(name == default_name),
                               gateway=mapping.gateway, cidr=mapping.cidr))
    return nics
