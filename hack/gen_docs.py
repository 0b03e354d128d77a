"""Writes the generated docs from the API models: docs/api-reference.md and docs/configuration.md.

Both come from the CRD schemas that operator/ssvm_operator/api/ generates (field, type, default,
limits, rules, description); configuration.md adds the CloudStack setting each Zone field replaces
(CLOUDSTACK below). Run `.venv/bin/python hack/gen_docs.py`; tests/docs/test_docs.py fails while stale
or when a Zone field has no CLOUDSTACK entry.
"""
from __future__ import annotations

import json
import pathlib
import sys
from typing import Any, Iterator

from ssvm_operator.api.crd import KINDS, build_crd

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NEW = "new: no CloudStack equivalent"

# Zone.spec field -> the CloudStack setting, table or concept it replaces.
LIBVIRT_NETWORK = {   # the same fields under each traffic type of template.libvirt.networks
    "*": "the traffic type's bridge (CloudStack's traffic label on KVM)",
    "bridge": "the KVM traffic label: a host bridge (`cloudbr0`, `cloud0`)",
    "network": f"{NEW} (a libvirt-managed network)",
    "cidr": "the pod/VLAN range's netmask (`host_pod_ref.cidr`, `vlan.vlan_netmask`)",
    "gateway": "the range's gateway",
    "firstAddress": "the start of the IP range (`op_dc_ip_address_alloc`, `user_ip_address`)",
    "lastAddress": "the end of the IP range",
}

CLOUDSTACK: dict[str, str] = {
    "networkType": "`data_center.networktype` (Basic / Advanced zone)",
    "securityGroupsEnabled": "`data_center.is_security_group_enabled`",
    "dns": "`data_center.dns1`, `dns2` (boot args `dns1`, `dns2`)",
    "internalDns": "`data_center.internal_dns1`, `internal_dns2` (boot args `internaldns1`, `internaldns2`)",
    "management": "where agents connect: global settings `host` and `port`",
    "management.host": "global setting `host` (management server address; boot arg `host`)",
    "management.port": "global setting `port` (8250; boot arg `port`)",
    "management.cidr": "global setting `management.network.cidr` (boot arg `mgmtcidr`)",
    "networks": "the zone's physical networks and their traffic types",
    "networks.public": "traffic type Public (its traffic label)",
    "networks.guest": "traffic type Guest (Basic and security-group zones)",
    "networks.management": "traffic type Management",
    "networks.storage": "traffic type Storage",
    "networks.*.networkName": "the traffic label (`kvm.public.network.device` etc.), here a Multus NetworkAttachmentDefinition",
    "networks.*.gateway": "the pod's or VLAN's gateway (boot arg `gateway`, `storagegateway`...)",
    "networks.*.cidr": "the pod's or VLAN's netmask (boot arg `netmask`, `storagenetmask`...)",
    "secondaryStorage": "the secondary storage VM manager's settings (`secstorage.*`)",
    "secondaryStorage.enabled": "zone detail / setting `enable.secstorage.vm`",
    "secondaryStorage.backend": "the hypervisor system VMs run on (`system.vm.default.hypervisor`); `external` is QuickCloud",
    "secondaryStorage.minRunning": "standby SSVMs of the premium manager (`secstorage.capacity.standby` keeps spare capacity)",
    "secondaryStorage.maxCount": "`max.ssvm.count`",
    "secondaryStorage.sessionMax": "`secstorage.session.max`",
    "secondaryStorage.standbySessions": "`secstorage.capacity.standby`",
    "secondaryStorage.scaleIn": "the premium manager's scale-in of idle command executors",
    "secondaryStorage.offering": "the system service offering for SSVMs (`service_offering`, `system_use`)",
    "secondaryStorage.offering.cpuCores": "offering CPU number",
    "secondaryStorage.offering.cpuSpeedMHz": "`ssvm.cpu.mhz`",
    "secondaryStorage.offering.memoryMiB": "`ssvm.ram.size`",
    "secondaryStorage.offering.limitCpuUse": "offering `limit_cpu_use`",
    "secondaryStorage.offering.rootDisk": "`system.vm.use.local.storage` (local) or shared primary storage",
    "secondaryStorage.offering.storageClass": "the primary storage pool (storage tags) of the root disk",
    "secondaryStorage.offering.rootDiskSizeGiB": "the system VM template's root disk size",
    "secondaryStorage.offering.networkRateMbps": "offering `nw_rate` (`vm.network.throttling.rate`)",
    "secondaryStorage.offering.ha": "offering `ha` (restart on host failure)",
    "secondaryStorage.template": "the system VM template registered per hypervisor (`router.template.*`, `vm_template` type SYSTEM)",
    "secondaryStorage.template.kubevirt": "the system VM template for the hypervisor",
    "secondaryStorage.template.kubevirt.containerDiskImage": "the template's install path, as a container disk image",
    "secondaryStorage.template.kubevirt.url": "the template's download URL",
    "secondaryStorage.template.external": "QuickCloud: hosts that run the storage service themselves",
    "secondaryStorage.template.external.hosts": "the QuickCloud hosts (`host` rows of type SecondaryStorageVM)",
    "secondaryStorage.template.external.hosts.name": "the host's name",
    "secondaryStorage.template.external.hosts.address": "the host's private IP",
    "secondaryStorage.template.external.hosts.port": "the control port 3922 (`CheckSshCommand`)",
    "secondaryStorage.template.external.hosts.hostKey": f"{NEW} (CloudStack trusts on first use; here the key is pinned)",
    "secondaryStorage.template.libvirt": "a KVM host of the zone running the system VM (`KVMHostInfo`, the libvirt agent's host)",
    "secondaryStorage.template.libvirt.uri": "the KVM host's libvirt connection (the KVM agent's `qemu:///system`)",
    "secondaryStorage.template.libvirt.sshKeySecretRef": f"{NEW} (CloudStack's KVM agent runs on the host itself)",
    "secondaryStorage.template.libvirt.knownHosts": f"{NEW} (the remote host's SSH key, pinned)",
    "secondaryStorage.template.libvirt.domainType": "the hypervisor type `KVM` (`qemu` is software emulation, as `kvm.emulate`-less test hosts run it)",
    "secondaryStorage.template.libvirt.image": "the system VM template (`systemvm-kvm-*.qcow2`), here booted from its kernel",
    "secondaryStorage.template.libvirt.image.kernel": f"{NEW} (CloudStack boots the template's own boot loader)",
    "secondaryStorage.template.libvirt.image.initrd": f"{NEW} (CloudStack boots the template's own boot loader)",
    "secondaryStorage.template.libvirt.image.rootDisk": "the system VM template on primary storage",
    "secondaryStorage.template.libvirt.storagePool": "the primary storage pool the root volume is created in",
    "secondaryStorage.template.libvirt.networks": "the KVM host's traffic labels (`kvm.*.network.device` bridges)",
    "secondaryStorage.template.libvirt.shutdownTimeoutSeconds": "the KVM agent's `stop.script.timeout` wait before destroying a domain",
    "secondaryStorage.mtu": "`secstorage.vm.mtu.size`",
    "secondaryStorage.encryptCopy": "`secstorage.encrypt.copy`",
    "secondaryStorage.allowedInternalSites": "`secstorage.allowed.internal.sites`",
    "secondaryStorage.httpProxy": "`secstorage.proxy`",
    "secondaryStorage.nfsVersion": "`secstorage.nfs.version` (image store detail `nfs.version`)",
    "secondaryStorage.copyPasswordSecretRef": "`secstorage.copy.password` (here in a Secret, never in the spec)",
    "secondaryStorage.sshKeySecretRef": "the management server's `systemvm.id_rsa` key (here per zone, in a Secret)",
    "secondaryStorage.health": "`ssvm-check.sh`, run by hand in CloudStack; here periodic",
    "secondaryStorage.health.intervalSeconds": NEW,
    "secondaryStorage.health.failureThreshold": NEW,
    "secondaryStorage.health.startTimeoutSeconds": "the SSH check on 3922 that fails a start (`CheckSshCommand`); here a timeout, then a new VM",
}


def _schema(kind_info) -> dict[str, Any]:
    return build_crd(kind_info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _type(s: dict[str, Any]) -> str:
    if s.get("type") == "array":
        return f"[]{_type(s.get('items', {}))}"
    if "enum" in s:
        return " | ".join(f"`{v}`" for v in s["enum"])
    if s.get("format") == "date-time":
        return "timestamp"
    return s.get("type") or ("any" if s.get("x-kubernetes-preserve-unknown-fields") else "object")


def _limits(s: dict[str, Any]) -> str:
    parts = []
    for key, text in (("minimum", "≥ {}"), ("maximum", "≤ {}"), ("minLength", "length ≥ {}"), ("maxLength", "length ≤ {}"),
                      ("minItems", "items ≥ {}"), ("maxItems", "items ≤ {}")):
        if key in s:
            parts.append(text.format(s[key]))
    rules = [r["message"] for r in s.get("x-kubernetes-validations", [])]
    rules += [f"each: {r['message']}" for r in s.get("items", {}).get("x-kubernetes-validations", [])]
    if "pattern" in s or "pattern" in s.get("items", {}):
        parts.append("pattern")
    return "; ".join(parts + rules)


def _default(s: dict[str, Any]) -> str:
    if "default" not in s or isinstance(s["default"], (dict, list)):
        return ""
    return f"`{json.dumps(s['default'])}`" if not isinstance(s["default"], str) else f"`{s['default']}`"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def walk(s: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(dotted path, schema, required) of every field below `s`, depth first, in declaration order."""
    required = set(s.get("required", []))
    for name, sub in (s.get("properties") or {}).items():
        path = f"{prefix}{name}"
        yield path, sub, name in required
        target = sub.get("items", sub) if sub.get("type") == "array" else sub
        if target.get("properties"):
            yield from walk(target, f"{path}[]." if sub.get("type") == "array" else f"{path}.")


def _table(root: dict[str, Any]) -> list[str]:
    rows = ["| field | type | default | limits and rules | description |", "| --- | --- | --- | --- | --- |"]
    for path, s, required in walk(root):
        default = _default(s)
        name = f"`{path}`" + (" (required)" if required else "")
        rows.append(f"| {name} | {_cell(_type(s))} | {_cell(default)} | {_cell(_limits(s))} | {_cell(s.get('description', ''))} |")
    return rows


def api_reference() -> str:
    lines = ["# API reference", "",
             "Generated by `hack/gen_docs.py` from the models in `operator/ssvm_operator/api/`: do not edit.",
             "Group `ssvm.io`, version `v1alpha1`; every kind is namespaced and has the status subresource.",
             "The same text is what `kubectl explain` prints. `pattern` marks a field checked by a regular expression.", ""]
    for info in KINDS:
        schema = _schema(info)
        lines += [f"## {info.kind}", "",
                  f"Plural `{info.plural}`, short name `{info.short}`. Conditions: "
                  + ", ".join(f"`{c}`" for c in info.model.CONDITIONS) + ".", ""]
        for rule in schema["properties"]["spec"].get("x-kubernetes-validations", []):
            lines.append(f"- rule on spec: {rule['message']}")
        for part in ("spec", "status"):
            lines += ["", f"### {info.kind}.{part}", "", *_table(schema["properties"][part])]
        lines.append("")
    return "\n".join(lines)


def zone_paths() -> list[str]:
    zone = next(i for i in KINDS if i.kind == "Zone")
    return [p.replace("[]", "") for p, _, _ in walk(_schema(zone)["properties"]["spec"])]


def _cloudstack(path: str) -> str | None:
    if path in CLOUDSTACK:
        return CLOUDSTACK[path]
    parts = path.split(".")
    if len(parts) == 3 and parts[0] == "networks":  # the same fields under each traffic type
        return CLOUDSTACK.get(f"networks.*.{parts[2]}")
    if len(parts) >= 5 and parts[:4] == ["secondaryStorage", "template", "libvirt", "networks"]:
        return LIBVIRT_NETWORK.get(parts[5] if len(parts) > 5 else "*")
    if len(parts) >= 2 and parts[-2].endswith("SecretRef"):
        return {"name": "(the Secret holding it)", "key": "(the key within that Secret)"}.get(parts[-1])
    return None


def configuration() -> str:
    zone = next(i for i in KINDS if i.kind == "Zone")
    fields = {p.replace("[]", ""): (s, req) for p, s, req in walk(_schema(zone)["properties"]["spec"])}
    lines = ["# Configuration reference: Zone", "",
             "Generated by `hack/gen_docs.py`: do not edit. Every `Zone.spec` field, its default, and the CloudStack",
             "setting it replaces. Secrets are never spec values: the spec names a Secret key (`*SecretRef`).",
             "Operator-wide settings are flags of `ssvm-operator run` (and Helm values): `--scan-interval` replaces",
             "`secstorage.capacityscan.interval`; `--metrics-port`, `--liveness`, `--log-level`, `--peering` are new.", "",
             "| field | type | default | replaces in CloudStack | description |", "| --- | --- | --- | --- | --- |"]
    for path, (s, _) in fields.items():
        default = _default(s)
        lines.append(f"| `spec.{path}` | {_cell(_type(s))} | {_cell(default)} | {_cell(_cloudstack(path) or '')} "
                     f"| {_cell(s.get('description', ''))} |")
    return "\n".join(lines) + "\n"


def missing_cloudstack() -> list[str]:
    return [p for p in zone_paths() if _cloudstack(p) is None]


def expected_files() -> dict[pathlib.Path, str]:
    return {DOCS / "api-reference.md": api_reference(), DOCS / "configuration.md": configuration()}


def main() -> int:
    missing = missing_cloudstack()
    if missing:
        print(f"add CLOUDSTACK entries for: {', '.join(missing)}", file=sys.stderr)
        return 1
    for path, text in expected_files().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
