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
    """The SSVM's NICs in device order; the pod NIC is the default when the default network is unset.
    A libvirt zone's NICs come from its `template.libvirt.networks` (bridges or libvirt networks)."""
    spec = as_zone_spec(zone_spec)
    ss = spec.secondary_storage
    if ss.backend == "libvirt" and ss.template is not None and ss.template.libvirt is not None:
        return plan_libvirt_nics(spec, ss.template.libvirt.networks)
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


def plan_libvirt_nics(spec: ZoneSpec, nets: Any) -> list[PlannedNic]:
    """NICs of an SSVM on libvirt (`LibvirtNetworks`), in the same device order; `network_name` is the
    bridge or libvirt network, and control carries the default route when the default network is unset."""
    def link(n: Any) -> str:
        return f"bridge:{n.bridge}" if n.bridge else f"network:{n.network}"

    default_name = default_traffic(spec)
    default_net = getattr(nets, default_name)
    nics = [PlannedNic(0, CONTROL, "Control", link(nets.control), default=default_net is None,
                       gateway=nets.control.gateway, cidr=nets.control.cidr)]
    for name, traffic in ((MANAGEMENT, "Management"), (default_name, "Guest" if default_name == GUEST else "Public"),
                          (STORAGE, "Storage")):
        net = getattr(nets, name)
        if net is not None:
            nics.append(PlannedNic(len(nics), name, traffic, link(net), default=(name == default_name),
                                   gateway=net.gateway, cidr=net.cidr))
    return nics


def nics_by_traffic(by_interface: Mapping[str, Any]) -> dict[str, Any]:
    """Traffic type -> NIC from interface name -> NIC; traffic types without a NIC of their own ride the
    control NIC, storage without one rides the management NIC, as CloudStack routes it."""
    nics: dict[str, Any] = {}
    for name, nic in by_interface.items():
        traffic = TRAFFIC_OF_INTERFACE.get(name)
        if traffic:
            nics[traffic] = nic
    control = nics.get("control")
    if control:
        nics.setdefault("public", control)
        nics.setdefault("private", control)
    if "private" in nics:
        nics.setdefault("storage", nics["private"])
    return nics
