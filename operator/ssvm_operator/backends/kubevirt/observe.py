"""What a VirtualMachine and its VirtualMachineInstance say about an SSVM, as an `ObservedVM`.
Pure: the backend fetches the two objects, this reads them.
"""
from __future__ import annotations

from typing import Any, Mapping

from ssvm_operator.model.niclayout import CONTROL, nics_by_traffic
from ssvm_operator.model.vm import NicInfo, ObservedVM, VMPhase
from ssvm_operator.backends.kubevirt import models as m
from ssvm_operator.backends.kubevirt.manifests import ANNOTATION_SPEC_HASH

# KubeVirt printableStatus values that are failure states; each becomes ObservedVM.reason.
FAILURE_STATES = ("ErrImagePull", "ImagePullBackOff", "ErrorUnschedulable", "CrashLoopBackOff", "DataVolumeError",
                  "ErrorPvcNotFound", "ErrorDataVolumeNotFound")

_PHASE_OF_PRINTABLE = {
    "Provisioning": VMPhase.PROVISIONING, "WaitingForVolumeBinding": VMPhase.PROVISIONING,
    "Starting": VMPhase.STARTING, "Running": VMPhase.RUNNING, "Paused": VMPhase.RUNNING,
    "Stopping": VMPhase.STOPPING, "Terminating": VMPhase.STOPPING, "Stopped": VMPhase.STOPPED,
    "Migrating": VMPhase.MIGRATING, "WaitingForReceiver": VMPhase.PROVISIONING,
}
_PHASE_OF_VMI = {"Pending": VMPhase.PROVISIONING, "Scheduling": VMPhase.PROVISIONING, "Scheduled": VMPhase.STARTING,
                 "Running": VMPhase.RUNNING, "Succeeded": VMPhase.STOPPED, "Failed": VMPhase.FAILED}


def nics_from_vmi(vmi: m.VMIRead | None) -> dict[str, NicInfo]:
    """Traffic type -> NIC from `status.interfaces[]` (see `nics_by_traffic`)."""
    by_name: dict[str, NicInfo] = {}
    for iface in (vmi.status.interfaces if vmi else []):
        if not iface.name:
            continue
        ip = iface.ip_address or next((a for a in iface.ip_addresses if ":" not in a), None)
        network = "pod" if iface.name == CONTROL else iface.name
        by_name[iface.name] = NicInfo(ip=_bare(ip), mac=iface.mac, network=network)
    return nics_by_traffic(by_name)


def _bare(ip: str | None) -> str | None:
    return ip.split("/", 1)[0] if ip else ip


def _failure(vm: m.VMRead, vmi: m.VMIRead | None) -> tuple[str, str] | None:
    status = vm.status.printable_status or ""
    if status in FAILURE_STATES:
        message = next((cond.message for cond in vm.status.conditions if cond.reason == status and cond.message), "")
        return status, message or f"VirtualMachine is in {status}"
    for cond in vm.status.conditions:  # a Failure condition also names the state
        if cond.type == "Failure" and cond.status == "True":
            return cond.reason or "Failure", cond.message or ""
    if vmi is not None and vmi.status.phase == "Failed":
        return vmi.status.reason or "VMIFailed", "VirtualMachineInstance failed"
    return None


def observe_objects(vm: Mapping[str, Any] | None, vmi: Mapping[str, Any] | None) -> ObservedVM:
    """The ObservedVM of a VM object and its VMI (either may be None)."""
    if vm is None:
        return ObservedVM(phase=VMPhase.ABSENT, reason="VMAbsent", message="no VirtualMachine exists")
    vm_r = m.VMRead.model_validate(vm)
    vmi_r = m.VMIRead.model_validate(vmi) if vmi is not None else None
    name = vm_r.metadata.get("name")
    restart = any(cond.type == "RestartRequired" and cond.status == "True" for cond in vm_r.status.conditions)
    common = dict(backend_name=name, api_version=m.KUBEVIRT_API_VERSION, kind="VirtualMachine",
                  nics=nics_from_vmi(vmi_r), instance_id=(vmi_r.metadata.get("uid") if vmi_r else None),
                  spec_hash=(vm_r.metadata.get("annotations") or {}).get(ANNOTATION_SPEC_HASH), restart_required=restart)
    if vm_r.metadata.get("deletionTimestamp"):
        return ObservedVM(phase=VMPhase.STOPPING, reason="Terminating", message="VirtualMachine is being deleted", **common)
    failure = _failure(vm_r, vmi_r)
    if failure:
        return ObservedVM(phase=VMPhase.FAILED, reason=failure[0], message=failure[1], **common)
    printable = vm_r.status.printable_status
    phase = _PHASE_OF_PRINTABLE.get(printable or "")
    if phase is None:  # no printableStatus yet: derive from the VMI, else from the run strategy
        if vmi_r is not None and vmi_r.status.phase in _PHASE_OF_VMI:
            phase = _PHASE_OF_VMI[vmi_r.status.phase]
        else:
            phase = VMPhase.STOPPED if vm_r.spec.run_strategy == "Halted" else VMPhase.PROVISIONING
        printable = printable or "Unknown"
    if phase is VMPhase.RUNNING and (vmi_r is None or vmi_r.status.phase != "Running"):
        phase = VMPhase.STARTING  # the VM says Running before its new instance reports in
    return ObservedVM(phase=phase, reason=printable, message=f"printableStatus {printable}", **common)
