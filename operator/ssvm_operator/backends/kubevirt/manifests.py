"""Pure builders of what the KubeVirt backend creates for one SSVM: its VirtualMachine and the
Secret holding its cloud-init data. Same inputs, same output; no cluster needed.
"""
from __future__ import annotations

from typing import Any, Mapping

from ssvm_operator import constants as c
from ssvm_operator.api.zone import KubeVirtTemplate, Offering, ZoneSpec
from ssvm_operator.model.niclayout import PlannedNic, as_zone_spec, plan_nics
from ssvm_operator.model.vm import VMRequest
from ssvm_operator.backends.kubevirt import models as m
from ssvm_operator.backends.kubevirt.userdata import (AgentPayload, build_user_data, interface_mac, network_data_document, render_network_data)

ROOT_DISK, CLOUDINIT_DISK = "rootdisk", "cloudinit"
USERDATA_KEY, NETWORKDATA_KEY = "userdata", "networkdata"  # the Secret keys KubeVirt's NoCloud source reads
BANDWIDTH_ANNOTATIONS = ("kubernetes.io/ingress-bandwidth", "kubernetes.io/egress-bandwidth")
ANNOTATION_TEMPLATE_SOURCE = f"{c.LABEL_PREFIX}/template-source"
ANNOTATION_SPEC_HASH = f"{c.LABEL_PREFIX}/spec-hash"   # the template + offering hash the VM was built from (core.rollout)


class ManifestError(ValueError):
    """The inputs cannot make a VM (e.g. no kubevirt template); `reason` suits a condition."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def secret_name(request: VMRequest) -> str:
    return request.secret_name or f"{request.name}-cloudinit"


def root_volume_name(vm_name: str) -> str:
    return f"{vm_name}-rootdisk"


def effective_offering(zone_spec: ZoneSpec | Mapping[str, Any], ssvm_spec: Mapping[str, Any] | None) -> Offering:
    """The SSVM's offering override, else the zone's."""
    override = (ssvm_spec or {}).get("offering")
    if override:
        return Offering.model_validate(override)
    return as_zone_spec(zone_spec).secondary_storage.offering


def effective_template(zone_spec: ZoneSpec | Mapping[str, Any], ssvm_spec: Mapping[str, Any] | None) -> KubeVirtTemplate | None:
    """The kubevirt image: the SSVM's template override, else the zone's; None when neither has one."""
    override = (ssvm_spec or {}).get("template") or {}
    if override.get("kubevirt"):
        return KubeVirtTemplate.model_validate(override["kubevirt"])
    template = as_zone_spec(zone_spec).secondary_storage.template
    return template.kubevirt if template else None


def owner_reference(request: VMRequest) -> m.OwnerReference:
    return m.OwnerReference(api_version=c.API_VERSION, kind=c.SSVM_KIND, name=request.name, uid=request.uid,
                            controller=True, block_owner_deletion=True)


def labels_for(request: VMRequest) -> dict[str, str]:
    return {**dict(request.labels), c.LABEL_SSVM: request.name, c.LABEL_ZONE: request.zone_name,
            c.LABEL_ROLE: request.role, c.LABEL_MANAGED_BY: c.MANAGED_BY}


def cpu_millicores(offering: Offering) -> int:
    """CloudStack's cores x MHz as Kubernetes CPU, counting one Kubernetes CPU as 1000 MHz."""
    return offering.cpu_cores * offering.cpu_speed_mhz


def resources_for(offering: Offering) -> m.ResourceRequirements:
    requests = {"memory": f"{offering.memory_mib}Mi", "cpu": f"{cpu_millicores(offering)}m"}
    limits = {"cpu": f"{cpu_millicores(offering)}m", "memory": f"{offering.memory_mib}Mi"} if offering.limit_cpu_use else None
    return m.ResourceRequirements(requests=requests, limits=limits)


def _root_disk(vm_name: str, offering: Offering, template: KubeVirtTemplate
               ) -> tuple[m.Volume, list[m.DataVolumeTemplate] | None, str]:
    """(root volume, dataVolumeTemplates, source description): a container disk when the offering is
    local and the image a container; otherwise CDI imports the image into a persistent volume."""
    if template.container_disk_image and offering.root_disk == "local":
        return (m.Volume(name=ROOT_DISK, container_disk=m.ContainerDiskSource(image=template.container_disk_image)),
                None, f"containerDisk:{template.container_disk_image}")
    url = template.url or f"docker://{template.container_disk_image}"
    source = m.DVSource(registry=m.RegistrySource(url=url)) if url.startswith("docker://") else m.DVSource(http=m.HttpSource(url=url))
    storage = m.StorageSpec(resources=m.ResourceRequirements(requests={"storage": f"{offering.root_disk_size_gib}Gi"}),
                            storage_class_name=offering.storage_class if offering.root_disk == "shared" else None,
                            access_modes=["ReadWriteMany"] if offering.root_disk == "shared" else None)
    dv_name = root_volume_name(vm_name)
    dvt = m.DataVolumeTemplate(metadata=m.ObjectMeta(name=dv_name), spec=m.DataVolumeSpec(source=source, storage=storage))
    return m.Volume(name=ROOT_DISK, data_volume=m.DataVolumeSource(name=dv_name)), [dvt], f"dataVolume:{url}"


def _interface(nic: PlannedNic, mac: str) -> m.Interface:
    if nic.is_pod:
        return m.Interface(name=nic.name, masquerade={}, mac_address=mac, model="virtio")
    return m.Interface(name=nic.name, bridge={}, mac_address=mac, model="virtio")


def _network(nic: PlannedNic) -> m.Network:
    if nic.is_pod:
        return m.Network(name=nic.name, pod={})
    return m.Network(name=nic.name, multus=m.MultusNetwork(network_name=str(nic.network_name)))


def build_virtual_machine_model(request: VMRequest) -> m.VirtualMachine:
    zone = as_zone_spec(request.zone_spec)
    offering = effective_offering(zone, request.ssvm_spec)
    template = effective_template(zone, request.ssvm_spec)
    if template is None:
        raise ManifestError("TemplateMissing", f"zone {request.zone_name} has no secondaryStorage.template.kubevirt image")
    nics = plan_nics(zone)
    labels = labels_for(request)
    root_volume, dv_templates, source = _root_disk(request.name, offering, template)
    template_annotations: dict[str, str] = {}
    if offering.network_rate_mbps:  # honoured by the CNI bandwidth plugin on the pod network
        template_annotations = {key: f"{offering.network_rate_mbps}M" for key in BANDWIDTH_ANNOTATIONS}
    cloudinit_ref = m.LocalObjectRef(name=secret_name(request))
    vmi_spec = m.VMISpec(
        domain=m.Domain(
            cpu=m.Cpu(cores=offering.cpu_cores),
            resources=resources_for(offering),
            devices=m.Devices(
                disks=[m.Disk(name=ROOT_DISK, boot_order=1), m.Disk(name=CLOUDINIT_DISK)],
                interfaces=[_interface(nic, interface_mac(request.uid, nic.name)) for nic in nics],
            ),
        ),
        networks=[_network(nic) for nic in nics],
        volumes=[root_volume, m.Volume(name=CLOUDINIT_DISK, cloud_init_no_cloud=m.CloudInitNoCloud(
            secret_ref=cloudinit_ref, network_data_secret_ref=cloudinit_ref))],
        hostname=request.name[:63],
        termination_grace_period_seconds=30,
    )
    return m.VirtualMachine(
        metadata=m.ObjectMeta(name=request.name, namespace=request.namespace, labels=labels,
                              annotations={ANNOTATION_TEMPLATE_SOURCE: source,
                                           **({ANNOTATION_SPEC_HASH: request.spec_hash} if request.spec_hash else {})},
                              owner_references=[owner_reference(request)]),
        spec=m.VirtualMachineSpec(
            run_strategy="Always" if request.running else "Halted",
            template=m.VMITemplate(metadata=m.TemplateMeta(labels=labels, annotations=template_annotations or None),
                                   spec=vmi_spec),
            data_volume_templates=dv_templates,
        ),
    )


def build_virtual_machine(request: VMRequest) -> dict[str, Any]:
    """The `kubevirt.io/v1` VirtualMachine of an SSVM, as a JSON-ready dict."""
    return build_virtual_machine_model(request).to_wire()


def build_cloudinit_secret(request: VMRequest, agent: AgentPayload, *, user_data: str | None = None) -> dict[str, Any]:
    """The Secret (owned by the SSVM) with the VM's cloud-init user data and network data.

    `user_data` replaces the built user data (render passes a redacted one).
    """
    zone = as_zone_spec(request.zone_spec)
    nics = plan_nics(zone)
    if user_data is None:
        if not (request.host_public_key and request.host_private_key and request.operator_public_key):
            raise ManifestError("KeysMissing", "the VM request lacks the host key pair or the operator's public key")
        user_data = build_user_data(boot_args=request.boot_args, host_private_key=request.host_private_key,
                                    host_public_key=request.host_public_key,
                                    operator_public_key=request.operator_public_key, agent=agent,
                                    hostname=request.name[:63])
    macs = {nic.name: interface_mac(request.uid, nic.name) for nic in nics}
    network_data = render_network_data(network_data_document(nics, macs, zone.secondary_storage.mtu))
    return m.Secret(
        metadata=m.ObjectMeta(name=secret_name(request), namespace=request.namespace, labels=labels_for(request),
                              owner_references=[owner_reference(request)]),
        string_data={USERDATA_KEY: user_data, NETWORKDATA_KEY: network_data},
    ).to_wire()

