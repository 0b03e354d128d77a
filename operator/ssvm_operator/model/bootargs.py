"""Boot arguments of an SSVM: the `key=value` line CloudStack's `finalizeVirtualMachineProfile`
hands a secondary storage VM, built from the zone and the SSVM's NICs. Pure functions.

The full line may carry a secret (`vmpassword`): backends deliver it through a Secret only, and
status shows `redact_boot_args(...)` of it.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from ssvm_operator.api.zone import ZoneSpec
from ssvm_operator.model.redaction import REDACTED, is_secret_key
from ssvm_operator.model.niclayout import CONTROL, MANAGEMENT, PUBLIC, GUEST, STORAGE, PlannedNic, as_zone_spec, plan_nics

NO_ADDRESS = "0.0.0.0"  # CloudStack's value for a NIC whose address is not known (assigned by DHCP/IPAM)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def build_boot_args(*, name: str, zone_name: str, role: str, zone_spec: ZoneSpec | Mapping[str, Any],
                    nics: Sequence[PlannedNic] | None = None, addresses: Mapping[str, str] | None = None,
                    vm_password: str | None = None) -> str:
    """The SSVM's boot arguments, space separated, in CloudStack's order.

    `nics` defaults to `plan_nics(zone_spec)`; `addresses` maps an interface name (control,
    management, public, guest, storage) to its IPv4 address when known, else 0.0.0.0 is passed.
    """
    spec = as_zone_spec(zone_spec)
    ss = spec.secondary_storage
    nics = list(nics) if nics is not None else plan_nics(spec)
    addresses = addresses or {}
    args: list[tuple[str, str]] = [("template", "domP"), ("type", "secstorage")]
    if spec.management is not None:
        args += [("host", spec.management.host), ("port", str(spec.management.port))]
    args += [("name", name), ("zone", zone_name), ("guid", name), ("instance", "SecStorage"),
             ("sslcopy", "true" if ss.encrypt_copy else "false"), ("role", role), ("mtu", str(ss.mtu))]
    args += _nic_args(spec, nics, addresses)
    if any(not addresses.get(nic.name) for nic in nics):
        args.append(("bootproto", "dhcp"))  # addresses come from DHCP/IPAM, as CloudStack's external DHCP mode
    for key, values in (("internaldns", spec.internal_dns), ("dns", spec.dns)):
        for i, server in enumerate(values[:2], start=1):
            args.append((f"{key}{i}", server))
    if ss.http_proxy:
        args.append(("proxy", ss.http_proxy))
    if ss.nfs_version:
        args.append(("nfsVersion", ss.nfs_version))
    if vm_password:
        args.append(("vmpassword", vm_password))
    return " ".join(f"{k}={v}" for k, v in args)


def _nic_args(spec: ZoneSpec, nics: Sequence[PlannedNic], addresses: Mapping[str, str]) -> list[tuple[str, str]]:
    args: list[tuple[str, str]] = []
    has = {nic.name for nic in nics}
    for nic in nics:
        dev = f"eth{nic.device_id}"
        ip = addresses.get(nic.name)
        args += [(f"{dev}ip", ip or NO_ADDRESS), (f"{dev}mask", (nic.netmask if ip else None) or NO_ADDRESS)]
        if nic.default and nic.gateway:
            args.append(("gateway", nic.gateway))
        # Traffic types without a network of their own ride the control (pod) NIC.
        if nic.name == MANAGEMENT or (nic.name == CONTROL and MANAGEMENT not in has):
            mgmt_cidr = (spec.management.cidr if spec.management else None) or nic.cidr
            if mgmt_cidr:
                args.append(("mgmtcidr", mgmt_cidr))
            if nic.gateway:
                args.append(("localgw", nic.gateway))
            args.append(("private.network.device", dev))
        if nic.name in (PUBLIC, GUEST) or (nic.name == CONTROL and not has & {PUBLIC, GUEST}):
            args.append(("public.network.device", dev))
        if nic.name == STORAGE:
            args += [("storageip", ip or NO_ADDRESS), ("storagenetmask", nic.netmask or NO_ADDRESS)]
            if nic.gateway:
                args.append(("storagegateway", nic.gateway))
    return args


def parse_boot_args(boot_args: str) -> dict[str, str]:
    """The `key=value` pairs of a boot-argument line (the last value wins, as in the guest's parser)."""
    out: dict[str, str] = {}
    for token in boot_args.split():
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


def redact_boot_args(boot_args: str) -> str:
    """The boot arguments fit for status and logs: secret values and URL credentials replaced."""
    out = []
    for token in boot_args.split():
        key, sep, value = token.partition("=")
        if sep and is_secret_key(key):
            token = f"{key}={REDACTED}"
        else:
            token = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", token)
        out.append(token)
    return " ".join(out)
