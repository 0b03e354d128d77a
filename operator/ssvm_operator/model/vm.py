"""What a backend is asked for and what it reports: VM requests, observed VMs, their phases and NICs,
and a backend's readiness for a zone. Plain values, shared by the controllers and every backend."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping


EXTERNAL_HOST_KIND = "ExternalHost"   # ObservedVM.kind of a host the external backend drives: its key is pinned in the zone


class VMPhase(str, enum.Enum):
    """What a backend observes of a VM, mapped by the core onto the SSVM lifecycle states."""

    ABSENT = "Absent"            # no VM exists for this SSVM
    PROVISIONING = "Provisioning"  # created, not yet booting (image pull, volume import)
    STARTING = "Starting"
    RUNNING = "Running"          # the backend's readiness; the SSH gate comes on top
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    MIGRATING = "Migrating"
    FAILED = "Failed"            # a failure state; `reason` says which (ErrImagePull, ...)


@dataclass(frozen=True)
class NicInfo:
    ip: str | None = None
    mac: str | None = None
    network: str | None = None


@dataclass(frozen=True)
class ObservedVM:
    phase: VMPhase
    reason: str = ""             # CamelCase, usable as a condition reason
    message: str = ""
    # traffic type (public, private, storage, control) -> NIC
    nics: Mapping[str, NicInfo] = field(default_factory=dict)
    instance_id: str | None = None   # changes when the VM is rebooted/recreated (e.g. the VMI uid)
    backend_name: str | None = None  # name of the VM object or external host
    api_version: str | None = None
    kind: str | None = None
    spec_hash: str | None = None     # the material hash stamped on the VM (VMRequest.spec_hash); None: not stamped
    restart_required: bool = False   # the VM's spec changed under its running instance (KubeVirt's RestartRequired)

    @property
    def control_ip(self) -> str | None:
        nic = self.nics.get("control")
        return nic.ip if nic else None


@dataclass(frozen=True)
class VMRequest:
    """Everything a backend needs to create or update the VM of one SSVM (built by the core)."""

    namespace: str
    name: str                    # the SSVM object's name
    uid: str                     # the SSVM object's uid, for owner references
    zone_name: str
    role: str
    running: bool                # desired run state
    zone_spec: Mapping[str, Any]     # the Zone's spec as stored (defaults applied)
    ssvm_spec: Mapping[str, Any]     # the SSVM's spec as stored
    labels: Mapping[str, str] = field(default_factory=dict)
    boot_args: str = ""              # with secrets: backends put it in a Secret, never inline
    host_public_key: str = ""        # the SSH host key the operator generated and pins
    host_private_key: str = field(default="", repr=False)  # its private half: only ever in the SSVM's Secret
    operator_public_key: str = ""    # authorised to log in to the guest
    secret_name: str = ""            # Secret (owned by the SSVM) holding cloud-init user data / keys
    spec_hash: str = ""              # template + offering digest (core.rollout); stamped on the VM, reported in ObservedVM


@dataclass(frozen=True)
class BackendReadiness:
    can_run_vms: bool
    template_ready: bool
    reason: str
    message: str = ""
