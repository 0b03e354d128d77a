"""Rules KubeVirt's admission webhook enforces on a VirtualMachine that its JSON schema cannot
express; `render` and the tests check every built VM with them.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Mapping

_MAC = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")


def webhook_violations(vm: Mapping[str, Any]) -> list[str]:
    """Field-named problems the webhook would refuse the VM for (empty when it would admit it)."""
    problems: list[str] = []
    spec = vm.get("spec") or {}
    if not spec.get("runStrategy"):
        problems.append("spec.runStrategy: Required value: set runStrategy (Always, Halted, ...)")
    if "running" in spec:
        problems.append("spec.running: Forbidden: running and runStrategy are mutually exclusive; use runStrategy only")
    tspec = (spec.get("template") or {}).get("spec") or {}
    devices = (tspec.get("domain") or {}).get("devices") or {}
    interfaces = devices.get("interfaces") or []
    networks = tspec.get("networks") or []
    disks = devices.get("disks") or []
    volumes = tspec.get("volumes") or []
    base = "spec.template.spec"
    for what, items in (("domain.devices.interfaces", interfaces), ("networks", networks),
                        ("domain.devices.disks", disks), ("volumes", volumes)):
        for name, count in Counter(i.get("name") for i in items).items():
            if count > 1:
                problems.append(f"{base}.{what}: Duplicate value: {name!r}")
    network_names = {n.get("name") for n in networks}
    interface_names = {i.get("name") for i in interfaces}
    for i, iface in enumerate(interfaces):
        if iface.get("name") not in network_names:
            problems.append(f"{base}.domain.devices.interfaces[{i}].name: Invalid value: {iface.get('name')!r}: "
                            "no network of the same name")
        mac = iface.get("macAddress")
        if mac is not None and not _MAC.match(mac):
            problems.append(f"{base}.domain.devices.interfaces[{i}].macAddress: Invalid value: {mac!r}")
    for i, net in enumerate(networks):
        if net.get("name") not in interface_names:
            problems.append(f"{base}.networks[{i}].name: Invalid value: {net.get('name')!r}: no interface of the same name")
        sources = [k for k in ("pod", "multus") if k in net]
        if len(sources) != 1:
            problems.append(f"{base}.networks[{i}]: Invalid value: exactly one of pod or multus is required")
    if sum(1 for n in networks if "pod" in n) > 1:
        problems.append(f"{base}.networks: Invalid value: more than one pod network")
    volume_names = {v.get("name") for v in volumes}
    for i, disk in enumerate(disks):
        if disk.get("name") not in volume_names:
            problems.append(f"{base}.domain.devices.disks[{i}].name: Invalid value: {disk.get('name')!r}: no volume of the same name")
    boot_orders = [d["bootOrder"] for d in disks if "bootOrder" in d]
    if any(b < 1 for b in boot_orders) or len(boot_orders) != len(set(boot_orders)):
        problems.append(f"{base}.domain.devices.disks: Invalid value: bootOrder values must be unique and at least 1")
    templates = {(t.get("metadata") or {}).get("name") for t in spec.get("dataVolumeTemplates") or []}
    for i, volume in enumerate(volumes):
        dv = volume.get("dataVolume")
        if dv is not None and dv.get("name") not in templates:
            problems.append(f"{base}.volumes[{i}].dataVolume.name: Invalid value: {dv.get('name')!r}: "
                            "no dataVolumeTemplates entry of that name")
        cloud_init = volume.get("cloudInitNoCloud")
        if cloud_init is not None:
            for key in ("secretRef", "networkDataSecretRef"):
                if key in cloud_init and not (cloud_init[key] or {}).get("name"):
                    problems.append(f"{base}.volumes[{i}].cloudInitNoCloud.{key}.name: Required value")
    if sum(1 for v in volumes if "cloudInitNoCloud" in v) > 1:
        problems.append(f"{base}.volumes: Invalid value: at most one cloudInitNoCloud volume")
    return problems
