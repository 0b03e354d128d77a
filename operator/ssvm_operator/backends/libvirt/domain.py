"""What the libvirt backend asks libvirt for, as pure functions: the domain's name and XML, its volumes,
the config disk (a tar archive with the pinned host key and the authorized keys), the addresses handed
out of each network's range, and what the operator's metadata element on a domain says."""
from __future__ import annotations

import hashlib
import io
import ipaddress
import tarfile
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from ssvm_operator.api.zone import LibvirtNetwork, LibvirtTemplate, Offering
from ssvm_operator.model.bootargs import build_boot_args
from ssvm_operator.model.niclayout import PlannedNic, as_zone_spec, plan_libvirt_nics
from ssvm_operator.model.vm import VMRequest

METADATA_NS = "https://ssvm-operator.dev/libvirt/1"
METADATA_PREFIX = "ssvm"
CONFIG_SERIAL = "ssvmcfg"   # the image's boot unit extracts the disk with this serial (hack/ssvm-image/ssvm-boot)
CONFIG_BYTES = 1 << 20
ROOT_CAPACITY_GIB = 4
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0 panic=-1"


class TemplateError(ValueError):
    """The zone's libvirt template cannot be turned into a domain; `reason` is the condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def domain_name(namespace: str, name: str) -> str:
    """`<namespace>.<ssvm>`: unique on a host, since a namespace never has a dot."""
    return f"{namespace}.{name}"


def root_volume(namespace: str, name: str) -> str:
    return f"{domain_name(namespace, name)}-root.qcow2"


def config_volume(namespace: str, name: str) -> str:
    return f"{domain_name(namespace, name)}-config.tar"


def effective_template(zone_spec: Mapping[str, Any], ssvm_spec: Mapping[str, Any] | None) -> LibvirtTemplate | None:
    """The SSVM's own libvirt template, else the zone's; None when neither sets one."""
    raw = (((ssvm_spec or {}).get("template") or {}).get("libvirt")
           or (((zone_spec.get("secondaryStorage") or {}).get("template") or {}).get("libvirt")))
    if not raw:
        return None
    try:
        return LibvirtTemplate.model_validate(raw)
    except ValueError as e:   # written around admission: said, never raised through
        raise TemplateError("InvalidLibvirtTemplate", f"template.libvirt is invalid: {e}"[:500]) from None


def address_range(net: LibvirtNetwork) -> list[ipaddress.IPv4Address]:
    """The addresses SSVMs may take on `net`: firstAddress..lastAddress (default: the CIDR's hosts), minus the gateway."""
    cidr = ipaddress.ip_network(net.cidr, strict=False)
    hosts = list(cidr.hosts()) if cidr.prefixlen < 31 else list(cidr)
    first = ipaddress.ip_address(net.first_address) if net.first_address else hosts[0]
    last = ipaddress.ip_address(net.last_address) if net.last_address else hosts[-1]
    where = net.bridge or net.network
    for value in (first, last):
        if value not in cidr:
            raise TemplateError("InvalidLibvirtNetwork", f"network {where}: address {value} is outside {net.cidr}")
    if first > last:
        raise TemplateError("InvalidLibvirtNetwork", f"network {where}: firstAddress {first} is after lastAddress {last}")
    gateway = ipaddress.ip_address(net.gateway) if net.gateway else None
    if gateway is not None and gateway not in cidr:
        raise TemplateError("InvalidLibvirtNetwork", f"network {where}: gateway {gateway} is outside {net.cidr}")
    return [ipaddress.ip_address(i) for i in range(int(first), int(last) + 1) if ipaddress.ip_address(i) != gateway]


def network_by_nic(template: LibvirtTemplate) -> dict[str, LibvirtNetwork]:
    nets = template.networks
    return {name: getattr(nets, name) for name in ("control", "management", "public", "guest", "storage")
            if getattr(nets, name) is not None}


def assign_addresses(nics: Iterable[PlannedNic], networks: Mapping[str, LibvirtNetwork],
                     taken: Mapping[str, set[str]], kept: Mapping[str, str] | None = None) -> dict[str, str]:
    """NIC name -> address: the one `kept` (already this SSVM's), else the first free of the NIC's range.
    `taken` maps a link (`bridge:x` / `network:y`) to the addresses other domains hold on it."""
    out: dict[str, str] = {}
    for nic in nics:
        net = networks[nic.name]
        used = taken.get(nic.network_name or "", set())
        mine = (kept or {}).get(nic.name)
        if mine and mine not in used:
            out[nic.name] = mine
            continue
        free = next((str(a) for a in address_range(net) if str(a) not in used), None)
        if free is None:
            raise TemplateError("NoFreeAddress", f"every address of network {net.bridge or net.network} "
                                                 f"({net.first_address or net.cidr}..{net.last_address or ''}) is taken")
        out[nic.name] = free
    return out


@dataclass(frozen=True)
class DomainRecord:
    """The operator's metadata on a domain: whose it is, its addresses, its spec hash, its boots."""

    namespace: str
    name: str
    zone: str
    uid: str = ""
    spec_hash: str = ""
    boots: int = 0
    addresses: Mapping[str, str] = field(default_factory=dict)   # NIC name -> address
    links: Mapping[str, str] = field(default_factory=dict)       # NIC name -> bridge:x / network:y


def metadata_xml(record: DomainRecord, qualified: bool = False) -> str:
    """The metadata element: `qualified` (with its namespace) inside a domain's XML, bare for setMetadata,
    which applies the namespace itself."""
    p = f"{METADATA_PREFIX}:" if qualified else ""
    xmlns = f" xmlns:{METADATA_PREFIX}='{METADATA_NS}'" if qualified else ""
    nics = "".join(f"<{p}nic name={quoteattr(n)} address={quoteattr(a)} link={quoteattr(record.links.get(n, ''))}/>"
                   for n, a in sorted(record.addresses.items()))
    return (f"<{p}ssvm{xmlns} namespace={quoteattr(record.namespace)} name={quoteattr(record.name)} "
            f"zone={quoteattr(record.zone)} uid={quoteattr(record.uid)} specHash={quoteattr(record.spec_hash)} "
            f"boots=\"{int(record.boots)}\">{nics}</{p}ssvm>")


def parse_metadata(xml: str) -> DomainRecord | None:
    """The record from a metadata element (with or without libvirt's namespace prefix); None when not ours."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    if root.tag.split("}")[-1] != "ssvm" or not root.get("namespace") or not root.get("name"):
        return None
    addresses, links = {}, {}
    for nic in root:
        if nic.tag.split("}")[-1] == "nic" and nic.get("name"):
            addresses[nic.get("name")] = nic.get("address", "")
            links[nic.get("name")] = nic.get("link", "")
    try:
        boots = int(root.get("boots", "0"))
    except ValueError:
        boots = 0
    return DomainRecord(root.get("namespace", ""), root.get("name", ""), root.get("zone", ""), root.get("uid", ""),
                        root.get("specHash", ""), boots, addresses, links)


def mac_of(namespace: str, name: str, nic: str) -> str:
    """A stable locally administered MAC in QEMU's 52:54:00 range, per SSVM and NIC."""
    digest = hashlib.sha256(f"{namespace}/{name}/{nic}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def planned_nics(zone_spec: Mapping[str, Any], template: LibvirtTemplate) -> list[PlannedNic]:
    """The SSVM's NICs from the template it runs on (its own, or the zone's), in CloudStack's order."""
    return plan_libvirt_nics(as_zone_spec(zone_spec), template.networks)


def boot_args_for(request: VMRequest, template: LibvirtTemplate, addresses: Mapping[str, str]) -> str:
    """CloudStack's boot-argument line with the addresses the backend assigned (no secret in it)."""
    return build_boot_args(name=request.name, zone_name=request.zone_name, role=request.role, zone_spec=request.zone_spec,
                           nics=planned_nics(request.zone_spec, template), addresses=addresses)


def _interface_xml(nic: PlannedNic, mac: str, rate_mbps: int | None) -> str:
    kind, _, source = (nic.network_name or "").partition(":")
    attr = "bridge" if kind == "bridge" else "network"
    bandwidth = ""
    if rate_mbps:
        kbytes = rate_mbps * 125   # libvirt's average is in KiB/s
        bandwidth = f"<bandwidth><inbound average='{kbytes}'/><outbound average='{kbytes}'/></bandwidth>"
    return (f"<interface type='{attr}'><source {attr}={quoteattr(source)}/><mac address='{mac}'/>"
            f"<model type='virtio'/>{bandwidth}</interface>")


def build_domain_xml(request: VMRequest, template: LibvirtTemplate, record: DomainRecord, pool: str) -> str:
    """The domain's XML: direct kernel boot with the boot arguments on the command line, the copy-on-write
    root disk and the config disk from `pool`, one virtio NIC per planned NIC, the operator's metadata."""
    offering = Offering.model_validate((request.ssvm_spec.get("offering") or
                                        (request.zone_spec.get("secondaryStorage") or {}).get("offering") or {}))
    nics = planned_nics(request.zone_spec, template)
    cmdline = f"{KERNEL_ARGS} {boot_args_for(request, template, record.addresses)}"
    interfaces = "".join(_interface_xml(nic, mac_of(request.namespace, request.name, nic.name), offering.network_rate_mbps)
                         for nic in nics)
    image = template.image
    return f"""<domain type='{template.domain_type}'>
  <name>{escape(domain_name(request.namespace, request.name))}</name>
  <title>{escape(f"SSVM {request.namespace}/{request.name} of zone {request.zone_name}")}</title>
  <metadata>{metadata_xml(record, qualified=True)}</metadata>
  <memory unit='MiB'>{offering.memory_mib}</memory>
  <vcpu>{offering.cpu_cores}</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{escape(image.kernel)}</kernel>
    <initrd>{escape(image.initrd)}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool={quoteattr(pool)} volume={quoteattr(root_volume(request.namespace, request.name))}/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool={quoteattr(pool)} volume={quoteattr(config_volume(request.namespace, request.name))}/>
      <target dev='vdb' bus='virtio'/>
      <serial>{CONFIG_SERIAL}</serial>
      <readonly/>
    </disk>
    {interfaces}
    <serial type='pty'/>
    <console type='pty'/>
  </devices>
</domain>"""


def root_volume_xml(namespace: str, name: str, backing: str) -> str:
    """A qcow2 overlay over the image's root file system: the SSVM writes only to its own layer."""
    return (f"<volume><name>{escape(root_volume(namespace, name))}</name><capacity unit='GiB'>{ROOT_CAPACITY_GIB}</capacity>"
            f"<target><format type='qcow2'/></target>"
            f"<backingStore><path>{escape(backing)}</path><format type='qcow2'/></backingStore></volume>")


def config_volume_xml(namespace: str, name: str) -> str:
    return (f"<volume><name>{escape(config_volume(namespace, name))}</name><capacity unit='bytes'>{CONFIG_BYTES}</capacity>"
            f"<target><format type='raw'/></target></volume>")


def config_archive(host_private_key: str, authorized_keys: str) -> bytes:
    """The config disk's content: a tar archive the guest unpacks at boot, padded to the volume's size."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, text, mode in (("ssh_host_ed25519_key", host_private_key, 0o600), ("authorized_keys", authorized_keys, 0o600)):
            data = (text.rstrip("\n") + "\n").encode() if text else b""
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    body = buf.getvalue()
    if len(body) > CONFIG_BYTES:
        raise TemplateError("ConfigTooLarge", f"the config disk's content ({len(body)} bytes) exceeds {CONFIG_BYTES} bytes")
    return body + b"\0" * (CONFIG_BYTES - len(body))
