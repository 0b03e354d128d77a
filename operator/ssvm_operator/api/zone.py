"""Zone: a data center whose Secondary Storage VMs the operator keeps (CloudStack's `data_center`)."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ssvm_operator.api.base import (HOST_PATTERN, item_rules, IPV4_CIDR_PATTERN, IPV4_OR_CIDR_PATTERN, IPV4_PATTERN, OCI_REFERENCE_RULE, ApiModel,
                   ObjectStatus, SecretKeyRef, cel, validations)

Backend = Literal["kubevirt", "external", "libvirt"]

# An http proxy URL: scheme http, a host, an optional port, nothing else (credentials stay out of specs).
PROXY_RULE = r"^http://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?/?$"


class Offering(ApiModel):
    """Compute offering of an SSVM (CloudStack's system service offering for secondary storage VMs)."""

    cpu_cores: int = Field(default=1, ge=1, le=64, description="Virtual CPU cores.")
    cpu_speed_mhz: int = Field(default=500, ge=100, le=10000, alias="cpuSpeedMHz",
                               description="CPU speed in MHz (CloudStack `ssvm.cpu.mhz`); with `limitCpuUse` it becomes a CPU limit.")
    memory_mib: int = Field(default=512, ge=256, le=65536, alias="memoryMiB", description="Memory in MiB (CloudStack `ssvm.ram.size`).")
    limit_cpu_use: bool = Field(default=False, description="Cap the VM's CPU at `cpuCores x cpuSpeedMHz` (a CPU limit).")
    root_disk: Literal["local", "shared"] = Field(
        default="local",
        description="Where the root disk lives: `local` boots an ephemeral container disk; `shared` imports the template into a "
                    "persistent volume (CloudStack `system.vm.use.local.storage=false`).")
    storage_class: str | None = Field(default=None, max_length=253, description="StorageClass for a `shared` root disk; the cluster default when unset.")
    root_disk_size_gib: int = Field(default=4, ge=1, le=1024, alias="rootDiskSizeGiB", description="Size of a `shared` root disk in GiB.")
    network_rate_mbps: int | None = Field(default=None, ge=1, le=100000, alias="networkRateMbps",
                                          description="Network rate limit in Mbit/s; unlimited when unset.")
    ha: bool = Field(default=True, description="Restart the SSVM automatically when its VM fails (CloudStack's offering HA flag).")


class KubeVirtTemplate(ApiModel):
    """System VM image for the kubevirt backend."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel("has(self.containerDiskImage) != has(self.url)", "set exactly one of containerDiskImage or url")
    )}

    container_disk_image: str | None = Field(
        default=None, min_length=1, max_length=512,
        description="Container disk image (e.g. registry.example/systemvm:4.19) booted as the root disk.",
        json_schema_extra=validations(cel(f"self.matches('{OCI_REFERENCE_RULE}')",
                                          "containerDiskImage must be an OCI image reference: [registry[:port]/]repository[:tag][@digest], "
                                          "repository in lower case")))
    url: str | None = Field(default=None, min_length=1, max_length=2048, pattern=r"^(https?|docker)://.+$",
                            description="HTTP(S) URL of a qcow2/raw image, or docker:// registry URL, imported by CDI into a "
                                        "persistent root disk (used with offering.rootDisk=shared).")


class ExternalHost(ApiModel):
    """A server the cloud does not create, that runs the secondary storage service (QuickCloud)."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Host name, unique in the zone.")
    address: str = Field(pattern=IPV4_PATTERN, description="IPv4 address the operator reaches the host's SSH on.")
    port: int = Field(default=3922, ge=1, le=65535, description="SSH port of the host's agent.")
    host_key: str = Field(min_length=1, max_length=4096, description="The host's SSH public key (`ssh-ed25519 AAAA...`), pinned.")


class ExternalTemplate(ApiModel):
    """The hosts that play SSVMs for the external backend."""

    hosts: list[ExternalHost] = Field(default_factory=list, max_length=64, description="Hosts, one SSVM slot each.")


BRIDGE_RULE = r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,14}$"   # a Linux interface name: at most 15 characters
LIBVIRT_URI_RULE = r"^(qemu(\+(ssh|libssh|libssh2|tls|tcp|unix))?://[^\s/]*/(system|session)(\?[^\s]*)?|test:///default)$"
ABSOLUTE_PATH_RULE = r"^/[^\s]*$"


class LibvirtNetwork(ApiModel):
    """How one traffic type reaches SSVMs on a libvirt host: a host bridge or a libvirt network, and the range
    the operator hands addresses out of (they reach the guest as boot arguments, as CloudStack's do)."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel("has(self.bridge) != has(self.network)", "set exactly one of bridge or network"),
    )}

    bridge: str | None = Field(default=None, pattern=BRIDGE_RULE, description="A bridge on the host (`<interface type='bridge'>`).")
    network: str | None = Field(default=None, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$",
                                description="A libvirt network (`<interface type='network'>`).")
    cidr: str = Field(pattern=IPV4_CIDR_PATTERN, description="The network's CIDR: the netmask in the boot arguments.")
    gateway: str | None = Field(default=None, pattern=IPV4_PATTERN, description="Its gateway (the default route when this NIC carries it).")
    first_address: str | None = Field(default=None, pattern=IPV4_PATTERN,
                                      description="First address handed to SSVMs; the CIDR's first host address when unset (the gateway is skipped).")
    last_address: str | None = Field(default=None, pattern=IPV4_PATTERN, description="Last address handed to SSVMs; the CIDR's last host address when unset.")


class LibvirtNetworks(ApiModel):
    """The NICs of an SSVM on libvirt, by traffic type; an unset traffic type rides the control NIC."""

    control: LibvirtNetwork = Field(description="eth0: the operator reaches SSH on 3922 here.")
    management: LibvirtNetwork | None = Field(default=None, description="The agent's link to the management server.")
    public: LibvirtNetwork | None = Field(default=None, description="Public traffic (the default NIC in Advanced zones).")
    guest: LibvirtNetwork | None = Field(default=None, description="Guest network (the default NIC in Basic and security-group zones).")
    storage: LibvirtNetwork | None = Field(default=None, description="NFS to the image stores.")


class LibvirtImage(ApiModel):
    """The SSVM image on the host (hack/ssvm-image/build.sh builds it): booted directly from its kernel."""

    kernel: str = Field(min_length=2, max_length=1024, pattern=ABSOLUTE_PATH_RULE, description="Path of the kernel (vmlinuz) on the host.")
    initrd: str = Field(min_length=2, max_length=1024, pattern=ABSOLUTE_PATH_RULE, description="Path of the initramfs on the host.")
    root_disk: str = Field(min_length=2, max_length=1024, pattern=ABSOLUTE_PATH_RULE,
                           description="Path of the qcow2 root file system on the host: the backing file of each SSVM's copy-on-write disk.")


class LibvirtTemplate(ApiModel):
    """Where and how SSVMs run as libvirt domains (KVM, or QEMU's software emulation)."""

    uri: str = Field(default="qemu:///system", max_length=1024, pattern=LIBVIRT_URI_RULE,
                     description="libvirt connection URI: `qemu:///system`, or `qemu+ssh://user@host/system` for a remote host.")
    ssh_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the SSH private key for a `qemu+ssh`/`qemu+libssh` URI.")
    known_hosts: str | None = Field(default=None, max_length=8192,
                                    description="known_hosts lines pinning the remote host's SSH key (for `qemu+libssh`/`qemu+libssh2`).")
    domain_type: Literal["kvm", "qemu"] = Field(default="kvm", description="`kvm` (hardware virtualisation) or `qemu` (software emulation).")
    image: LibvirtImage = Field(description="Kernel, initramfs and root file system on the host.")
    storage_pool: str = Field(default="default", min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$",
                              description="Storage pool holding each SSVM's copy-on-write disk and config disk.")
    networks: LibvirtNetworks = Field(description="The SSVM's NICs by traffic type.")
    shutdown_timeout_seconds: int = Field(default=30, ge=1, le=600,
                                          description="Seconds a stopping SSVM gets to shut down cleanly before it is powered off.")


class Template(ApiModel):
    """System VM template per backend."""

    kubevirt: KubeVirtTemplate | None = Field(default=None, description="Image for the kubevirt backend.")
    external: ExternalTemplate | None = Field(default=None, description="Hosts for the external backend.")
    libvirt: LibvirtTemplate | None = Field(default=None, description="Host, image and networks for the libvirt backend.")


class ManagementEndpoint(ApiModel):
    """Where SSVM agents connect to (CloudStack management server, port 8250)."""

    host: str = Field(min_length=1, max_length=253, pattern=HOST_PATTERN, description="Management server host name or IP.")
    port: int = Field(default=8250, ge=1, le=65535, description="Management server agent port.")
    cidr: str | None = Field(default=None, pattern=IPV4_CIDR_PATTERN, description="Management network CIDR (boot argument `mgmtcidr`).")


class NetworkMapping(ApiModel):
    """How one traffic type reaches the SSVM: a Multus network and its addressing."""

    network_name: str = Field(min_length=1, max_length=253, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                              description="Multus NetworkAttachmentDefinition, `name` or `namespace/name`.")
    gateway: str | None = Field(default=None, pattern=IPV4_PATTERN, description="Gateway of this network.")
    cidr: str | None = Field(default=None, pattern=IPV4_CIDR_PATTERN, description="CIDR of this network (netmask in boot arguments).")


class Networks(ApiModel):
    """Traffic types of the zone. Unset ones ride the pod network."""

    public: NetworkMapping | None = Field(default=None, description="Public traffic: copies between zones, downloads (default NIC in Advanced zones).")
    guest: NetworkMapping | None = Field(default=None, description="Guest network: the default NIC in Basic and security-group zones.")
    management: NetworkMapping | None = Field(default=None, description="Management traffic: the agent's link to the management server.")
    storage: NetworkMapping | None = Field(default=None, description="Storage traffic: NFS to image stores.")


class HealthPolicy(ApiModel):
    """How often SSVMs are checked and when an unhealthy one is recreated."""

    interval_seconds: int = Field(default=60, ge=5, le=86400, description="Seconds between health checks of each SSVM.")
    failure_threshold: int = Field(default=3, ge=1, le=100, description="Consecutive failed checks after which the SSVM is recreated.")
    start_timeout_seconds: int = Field(
        default=600, ge=10, le=86400,
        description="Seconds a running VM may take to answer SSH on 3922 before it is recreated (never for HostKeyMismatch, "
                    "which needs a person).")


class SecondaryStorage(ApiModel):
    """The zone's secondary storage VMs: how many, what they run on, how they are set up."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel("!has(self.minRunning) || !has(self.maxCount) || self.minRunning <= self.maxCount", "minRunning must not exceed maxCount",
            ".minRunning"),
        cel("!has(self.backend) || self.backend != 'external' || !has(self.template) || has(self.template.external)",
            "the external backend takes its hosts from template.external", ".template"),
        cel("!has(self.backend) || self.backend != 'libvirt' || !has(self.template) || has(self.template.libvirt)",
            "the libvirt backend takes its host, image and networks from template.libvirt", ".template"),
    )}

    enabled: bool = Field(default=True, description="Run SSVMs in this zone (CloudStack `enable.secstorage.vm`); false stops them, as QuickCloud does.")
    backend: Backend = Field(default="kubevirt", description="Where SSVMs run: `kubevirt` VirtualMachines, `libvirt` domains or `external` hosts.")
    min_running: int = Field(default=1, ge=0, le=100, description="SSVMs kept running as standby, whatever the load.")
    max_count: int = Field(default=5, ge=1, le=100, description="Most SSVMs in the zone (CloudStack `max.ssvm.count`).")
    session_max: int = Field(default=50, ge=1, le=10000, description="Copy sessions one SSVM serves (CloudStack `secstorage.session.max`).")
    standby_sessions: int = Field(default=10, ge=0, le=100000,
                                  description="Free session slots to keep; fewer starts another commandExecutor (CloudStack `secstorage.capacity.standby`).")
    scale_in: bool = Field(default=False, description="Destroy idle SSVMs no rule needs (commandExecutors first) when the load allows.")
    offering: Offering = Field(default_factory=Offering, description="Compute offering of the zone's SSVMs.")
    template: Template | None = Field(default=None, description="System VM template for the backend.")
    mtu: int = Field(default=1500, ge=576, le=9000, description="MTU of the SSVM's NICs (CloudStack `secstorage.vm.mtu.size`).")
    encrypt_copy: bool = Field(default=False, description="Serve copies over HTTPS on 443 instead of HTTP on 80 (CloudStack `secstorage.encrypt.copy`).")
    allowed_internal_sites: list[str] = Field(
        default_factory=list, max_length=64,
        description="IPv4 addresses or CIDRs inside the cloud SSVMs may download from (CloudStack `secstorage.allowed.internal.sites`); "
                    "a plain IP means /32; 0.0.0.0/x is refused.",
        json_schema_extra=item_rules(pattern=IPV4_OR_CIDR_PATTERN, maxLength=18, **validations(
            cel("!self.startsWith('0.0.0.0')", "0.0.0.0/x is not an internal site: list the networks SSVMs may reach"))))
    http_proxy: str | None = Field(
        default=None, max_length=512,
        description="HTTP proxy for downloads, `http://host[:port]` (port 3128 when omitted; CloudStack `secstorage.proxy`).",
        json_schema_extra=validations(
            cel("self.startsWith('http://')", "httpProxy must use the http scheme: http://host[:port]"),
            cel("!self.contains('@')", "httpProxy must not carry credentials"),
            cel(f"self.matches('{PROXY_RULE}')", "httpProxy must be http://host[:port] with a host name or IP"),
        ))
    nfs_version: Literal["3", "4", "4.0", "4.1", "4.2"] | None = Field(
        default=None, description="NFS version for image stores that set none; the mount negotiates when unset.")
    copy_password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the copy password (CloudStack `secstorage.copy.password`); generated when unset.")
    ssh_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the operator's SSH private key for this zone's SSVMs; the operator's own key when unset.")
    health: HealthPolicy = Field(default_factory=HealthPolicy, description="Health checking of the SSVMs.")


class ZoneSpec(ApiModel):
    """Desired state of a Zone."""

    network_type: Literal["Basic", "Advanced"] = Field(default="Advanced", description="CloudStack network type of the zone.")
    security_groups_enabled: bool = Field(default=False, description="Security groups are on (the default NIC is then on the guest network).")
    dns: list[str] = Field(default_factory=list, max_length=2, json_schema_extra=item_rules(pattern=IPV4_PATTERN, maxLength=15),
                           description="Public DNS servers (boot arguments dns1, dns2).")
    internal_dns: list[str] = Field(default_factory=list, max_length=2, json_schema_extra=item_rules(pattern=IPV4_PATTERN, maxLength=15),
                                    description="Internal DNS servers (boot arguments internaldns1, internaldns2).")
    management: ManagementEndpoint | None = Field(default=None, description="The management server SSVM agents connect to.")
    networks: Networks = Field(default_factory=Networks, description="Which network each traffic type maps to.")
    secondary_storage: SecondaryStorage = Field(default_factory=SecondaryStorage, description="The zone's secondary storage VMs.")


class ZoneStatus(ObjectStatus):
    """Observed state of a Zone."""

    desired_ssvms: int | None = Field(default=None, ge=0, alias="desiredSSVMs", description="SSVMs the zone should have.")
    actual_ssvms: int | None = Field(default=None, ge=0, alias="actualSSVMs", description="SSVMs counted against the capacity rule (Running, Starting, Migrating, Stopping, Stopped).")
    running_ssvms: int | None = Field(default=None, ge=0, alias="runningSSVMs", description="SSVMs in state Running.")
    image_stores: int | None = Field(default=None, ge=0, description="Image stores of the zone.")
    writable_image_stores: int | None = Field(default=None, ge=0, description="Image stores that are not read-only.")
    active_sessions: int | None = Field(default=None, ge=0, description="Copy sessions reported by the SSVMs' health checks.")


class Zone(ApiModel):
    KIND: ClassVar[str] = "Zone"
    # Every condition a Zone carries, and the one controller that writes it (docs/architecture.md).
    CONDITIONS: ClassVar[dict[str, str]] = {
        "SecondaryStorageEnabled": "zone", "TemplateReady": "zone", "ImageStoreAvailable": "zone", "BackendReady": "zone",
        "SSVMsUpToDate": "zone", "Ready": "zone",
    }

    spec: ZoneSpec = Field(default_factory=ZoneSpec)
    status: ZoneStatus | None = None


DEFAULT_PROXY_PORT = 3128


def normalized_site(site: str) -> str:
    """An allowed internal site as a CIDR: a plain IP means that host (/32); host bits are cleared."""
    import ipaddress

    return str(ipaddress.ip_network(site if "/" in site else f"{site}/32", strict=False))


def proxy_endpoint(url: str) -> tuple[str, int]:
    """(host, port) of an `http://host[:port]` proxy; the port defaults to 3128 as Squid's does."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http proxy URL: {url!r}")
    return parts.hostname, parts.port or DEFAULT_PROXY_PORT
