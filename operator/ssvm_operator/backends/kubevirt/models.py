"""Pydantic models of the KubeVirt and CDI fields this backend writes and reads (no KubeVirt Python
client exists): only the fields used, camelCase on the wire, unknown fields refused when building
(so a typo fails here, not in the cluster) and ignored when reading (the cluster adds many).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

KUBEVIRT_GROUP, KUBEVIRT_VERSION = "kubevirt.io", "v1"
KUBEVIRT_API_VERSION = f"{KUBEVIRT_GROUP}/{KUBEVIRT_VERSION}"
VM_PLURAL, VMI_PLURAL = "virtualmachines", "virtualmachineinstances"
CDI_GROUP, CDI_VERSION = "cdi.kubevirt.io", "v1beta1"

RunStrategy = Literal["Always", "Halted", "Manual", "RerunOnFailure", "Once"]


class Wire(BaseModel):
    """Built objects: camelCase, strict."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Read(BaseModel):
    """Observed objects: camelCase, tolerant of fields this backend does not use."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class OwnerReference(Wire):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(Wire):
    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None


# --- VirtualMachineInstance template ---

class Interface(Wire):
    name: str
    masquerade: dict[str, Any] | None = None   # pod network: KubeVirt NATs the pod IP to the guest
    bridge: dict[str, Any] | None = None       # Multus networks: the guest is on the L2 segment
    mac_address: str | None = None
    model: str | None = None


class MultusNetwork(Wire):
    network_name: str
    default: bool | None = None


class Network(Wire):
    name: str
    pod: dict[str, Any] | None = None
    multus: MultusNetwork | None = None


class DiskTarget(Wire):
    bus: Literal["virtio", "sata", "scsi", "usb"] = "virtio"


class Disk(Wire):
    name: str
    disk: DiskTarget = Field(default_factory=DiskTarget)
    boot_order: int | None = None


class ContainerDiskSource(Wire):
    image: str
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None


class DataVolumeSource(Wire):
    name: str


class LocalObjectRef(Wire):
    name: str


class CloudInitNoCloud(Wire):
    secret_ref: LocalObjectRef | None = None            # user data (a Secret key `userdata`)
    network_data_secret_ref: LocalObjectRef | None = None  # network data (key `networkdata`)


class Volume(Wire):
    name: str
    container_disk: ContainerDiskSource | None = None
    data_volume: DataVolumeSource | None = None
    cloud_init_no_cloud: CloudInitNoCloud | None = None


class Devices(Wire):
    disks: list[Disk]
    interfaces: list[Interface]


class Cpu(Wire):
    cores: int


class ResourceRequirements(Wire):
    requests: dict[str, str] | None = None
    limits: dict[str, str] | None = None


class Domain(Wire):
    cpu: Cpu
    resources: ResourceRequirements
    devices: Devices


class VMISpec(Wire):
    domain: Domain
    networks: list[Network]
    volumes: list[Volume]
    hostname: str | None = None
    termination_grace_period_seconds: int | None = None


class TemplateMeta(Wire):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class VMITemplate(Wire):
    metadata: TemplateMeta | None = None
    spec: VMISpec


# --- CDI DataVolume template (persistent root disk) ---

class HttpSource(Wire):
    url: str


class RegistrySource(Wire):
    url: str  # docker://image


class DVSource(Wire):
    http: HttpSource | None = None
    registry: RegistrySource | None = None


class StorageSpec(Wire):
    resources: ResourceRequirements
    storage_class_name: str | None = None
    access_modes: list[str] | None = None


class DataVolumeSpec(Wire):
    source: DVSource
    storage: StorageSpec


class DataVolumeTemplate(Wire):
    metadata: ObjectMeta
    spec: DataVolumeSpec


class VirtualMachineSpec(Wire):
    run_strategy: RunStrategy
    template: VMITemplate
    data_volume_templates: list[DataVolumeTemplate] | None = None


class VirtualMachine(Wire):
    api_version: str = KUBEVIRT_API_VERSION
    kind: Literal["VirtualMachine"] = "VirtualMachine"
    metadata: ObjectMeta
    spec: VirtualMachineSpec


class Secret(Wire):
    api_version: str = "v1"
    kind: Literal["Secret"] = "Secret"
    metadata: ObjectMeta
    type: str = "Opaque"
    string_data: dict[str, str] | None = None


# --- what the backend reads back ---

class StatusCondition(Read):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


class VMStatusRead(Read):
    printable_status: str | None = None
    ready: bool | None = None
    created: bool | None = None
    conditions: list[StatusCondition] = Field(default_factory=list)


class VMSpecRead(Read):
    run_strategy: str | None = None
    running: bool | None = None


class VMRead(Read):
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: VMSpecRead = Field(default_factory=VMSpecRead)
    status: VMStatusRead = Field(default_factory=VMStatusRead)


class VMIInterfaceRead(Read):
    name: str | None = None
    ip_address: str | None = None
    ip_addresses: list[str] = Field(default_factory=list)
    mac: str | None = None
    interface_name: str | None = None


class VMIStatusRead(Read):
    phase: str | None = None
    reason: str | None = None
    interfaces: list[VMIInterfaceRead] = Field(default_factory=list)
    conditions: list[StatusCondition] = Field(default_factory=list)


class VMIRead(Read):
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: VMIStatusRead = Field(default_factory=VMIStatusRead)
