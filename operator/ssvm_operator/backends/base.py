"""The one interface every VM backend implements: ensure, start, stop, reboot, destroy, observe.

The reconcile core decides; a backend only carries out and reports what it sees. Methods are async
because backends talk to an API or a host; blocking clients run in a thread with a timeout.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable


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


class BackendError(Exception):
    """A backend call failed; `reason` becomes a condition reason, `retry_after` a backoff hint."""

    def __init__(self, reason: str, message: str, retry_after: float | None = 10.0):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


@runtime_checkable
class VMBackend(Protocol):
    name: str

    async def readiness(self, namespace: str, zone_name: str, zone_spec: Mapping[str, Any]) -> BackendReadiness:
        """Whether this backend can run VMs for the zone and its template is available."""

    async def ensure(self, request: VMRequest) -> ObservedVM:
        """Creates the VM if missing and brings its desired run state and spec in line; idempotent."""

    async def start(self, namespace: str, name: str) -> None: ...

    async def stop(self, namespace: str, name: str) -> None: ...

    async def reboot(self, namespace: str, name: str) -> None:
        """A new instance of a running VM (a soft reboot); starts a stopped one."""

    async def destroy(self, namespace: str, name: str) -> None:
        """Deletes the VM; succeeds when it is already gone."""

    async def observe(self, namespace: str, name: str) -> ObservedVM: ...
