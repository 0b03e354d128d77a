"""SecondaryStorageVM: one SSVM (CloudStack's `SecondaryStorageVmVO`, its VM instance and its agent host)."""
from __future__ import annotations

import datetime
from typing import ClassVar, Literal

from pydantic import Field

from ssvm_operator.api.base import ApiModel, ObjectStatus, immutable
from ssvm_operator.api.zone import Backend, Offering, Template

Role = Literal["templateProcessor", "commandExecutor"]
# CloudStack's VM lifecycle states.
State = Literal["Creating", "Starting", "Running", "Stopping", "Stopped", "Migrating", "Destroyed", "Error"]

TOKEN_PATTERN = r"^[A-Za-z0-9][-A-Za-z0-9_.:]{0,62}$"


class SecondaryStorageVMSpec(ApiModel):
    """Desired state of an SSVM."""

    zone_ref: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                          description="Name of the Zone (same namespace) this SSVM serves.",
                          json_schema_extra=immutable("zoneRef"))
    role: Role = Field(default="templateProcessor",
                       description="templateProcessor SSVMs exist per image store; commandExecutors are added under load.")
    desired_state: Literal["Running", "Stopped"] = Field(default="Running", description="Whether the SSVM should run.")
    offering: Offering | None = Field(default=None, description="Overrides the zone's offering for this SSVM.")
    template: Template | None = Field(default=None, description="Overrides the zone's template for this SSVM.")
    reboot_request: str | None = Field(
        default=None, pattern=TOKEN_PATTERN,
        description="Set to a new token to reboot the SSVM once (a stopped SSVM is started); acknowledged in status.observedRebootRequest.")
    recreate_request: str | None = Field(
        default=None, pattern=TOKEN_PATTERN,
        description="Set to a new token to destroy and recreate the SSVM's VM once; acknowledged in status.observedRecreateRequest.")
    check_request: str | None = Field(
        default=None, pattern=TOKEN_PATTERN,
        description="Set to a new token to run a health check now; its result is in status.health, acknowledged in "
                    "status.observedCheckRequest.")
    diagnostics_request: str | None = Field(
        default=None, pattern=TOKEN_PATTERN,
        description="Set to a new token to collect diagnostics (a check, the agent's log, configuration, iptables, mounts, "
                    "routes, DNS answers, disk use) into the ConfigMap named in status.diagnostics.")


class NicStatus(ApiModel):
    """One NIC of the SSVM as the backend reports it."""

    ip: str | None = Field(default=None, description="IPv4 address.")
    mac: str | None = Field(default=None, description="MAC address.")
    network: str | None = Field(default=None, description="Backend network the NIC is attached to.")


class Nics(ApiModel):
    """The SSVM's addresses per traffic type."""

    public: NicStatus | None = Field(default=None, description="Public NIC: peers copy from this address.")
    private: NicStatus | None = Field(default=None, description="Management (private) NIC.")
    storage: NicStatus | None = Field(default=None, description="Storage NIC.")
    control: NicStatus | None = Field(default=None, description="Control NIC: the operator's SSH reaches the SSVM here.")


class BackendRef(ApiModel):
    """What runs the SSVM in its backend."""

    backend: Backend = Field(description="Backend kind.")
    api_version: str | None = Field(default=None, description="apiVersion of the backend object (kubevirt).")
    kind: str | None = Field(default=None, description="Kind of the backend object (VirtualMachine, LibvirtDomain, ExternalHost).")
    name: str = Field(description="Name of the VirtualMachine, libvirt domain or external host.")


class AppliedStore(ApiModel):
    """One image store's setup as applied on the guest (setup-store is pushed per store)."""

    store: str = Field(max_length=253, description="ImageStore name.")
    hash: str = Field(max_length=128, description="Hash of the store's setup content applied on this VM instance.")
    url: str | None = Field(default=None, max_length=2048, description="The store's URL, to unmount it once the store is removed.")


class ActionStatus(ApiModel):
    """A guest action's desired and applied content (by hash) and its last result."""

    desired_hash: str | None = Field(default=None, description="Hash of the content the action should apply now.")
    applied_hash: str | None = Field(default=None, description="Hash of the content last applied successfully.")
    result: Literal["Succeeded", "Failed", "Pending"] | None = Field(default=None, description="Outcome of the last attempt.")
    reason: str | None = Field(default=None, description="Reason of a failure.")
    message: str | None = Field(default=None, max_length=4096, description="Details of the last attempt (secrets redacted).")
    attempts: int | None = Field(default=None, ge=0, description="Times the desired content was pushed, as the guest counts them "
                                                               "(pushes the operator could not record, before a restart, included).")
    applied_stores: list[AppliedStore] | None = Field(default=None, max_length=512,
                                                      description="setup-store: each store's content applied, so only changed stores are pushed.")
    last_attempt_time: datetime.datetime | None = Field(default=None, description="When the action was last pushed.")


class GuestActions(ApiModel):
    """The guest actions of CloudStack's SecStorageSetup/FirewallCfg/VMSetup commands."""

    setup_store: ActionStatus | None = Field(default=None, description="NFS setup of every store of the zone.")
    firewall: ActionStatus | None = Field(default=None, description="Copy-port allow-list of peer SSVMs.")
    vm_setup: ActionStatus | None = Field(default=None, description="Allowed internal sites and copy credentials.")


class CheckResult(ApiModel):
    name: str = Field(description="What was checked (dns, store:<id>, management, copyServer).")
    ok: bool = Field(description="Whether it passed.")
    message: str | None = Field(default=None, max_length=1024, description="Details.")


class HealthStatus(ApiModel):
    """The last health check (CloudStack's ssvm-check.sh, run periodically)."""

    last_check_time: datetime.datetime | None = Field(
        default=None, description="When a check last ran, as of the last write: checks run every health.intervalSeconds; one "
                                  "that finds what the one before found is written only when this is 10 minutes old.")
    healthy: bool | None = Field(default=None, description="Whether every check passed.")
    consecutive_failures: int | None = Field(default=None, ge=0, description="Failed checks in a row.")
    active_sessions: int | None = Field(default=None, ge=0, description="Copy sessions in progress.")
    checks: list[CheckResult] = Field(default_factory=list, max_length=64, description="Each check's outcome.")


class SSHKeysStatus(ApiModel):
    """The operator SSH keys the guest accepts, as last verified by the operator (recorded while a key rotates)."""

    accepted: list[str] = Field(default_factory=list, max_length=64,
                                description="SHA256 fingerprints of the keys in the guest's authorized_keys (the operator's among them).")
    instance_id: str | None = Field(default=None, description="The VM instance they were verified on (a new instance is verified again).")
    verified_time: datetime.datetime | None = Field(default=None, description="When the operator last verified them.")


class DiagnosticsStatus(ApiModel):
    """The last diagnostics bundle (secrets redacted)."""

    config_map: str = Field(max_length=253, description="ConfigMap (owned by the SSVM) holding the bundle, one file per key.")
    collected_time: datetime.datetime | None = Field(default=None, description="When it was collected.")
    bytes: int | None = Field(default=None, ge=0, description="Size of the bundle.")


class SecondaryStorageVMStatus(ObjectStatus):
    """Observed state of an SSVM."""

    state: State | None = Field(default=None, description="Lifecycle state: Creating, Starting, Running, Stopping, Stopped, Migrating, Destroyed, Error.")
    backend_ref: BackendRef | None = Field(default=None, description="The VM or host that runs this SSVM.")
    nics: Nics | None = Field(default=None, description="Addresses and MACs per traffic type.")
    boot_args: str | None = Field(default=None, max_length=8192, description="Boot arguments passed to the SSVM, secrets redacted.")
    host_key_fingerprint: str | None = Field(default=None, description="SHA256 fingerprint of the SSH host key the operator pinned.")
    ssh_keys: SSHKeysStatus | None = Field(default=None, description="Operator SSH keys the guest accepts (see Rotate the operator's SSH key).")
    actions: GuestActions | None = Field(default=None, description="Guest actions: desired and applied content hashes and results.")
    health: HealthStatus | None = Field(default=None, description="The last health check.")
    observed_reboot_request: str | None = Field(default=None, description="The last rebootRequest token acted on.")
    observed_recreate_request: str | None = Field(default=None, description="The last recreateRequest token acted on.")
    observed_check_request: str | None = Field(default=None, description="The last checkRequest token whose check ran (result in health).")
    observed_diagnostics_request: str | None = Field(default=None, description="The last diagnosticsRequest token acted on.")
    diagnostics: DiagnosticsStatus | None = Field(default=None, description="The last diagnostics bundle.")


class SecondaryStorageVM(ApiModel):
    KIND: ClassVar[str] = "SecondaryStorageVM"
    # Every condition an SSVM carries, and the one controller that writes it (docs/architecture.md).
    CONDITIONS: ClassVar[dict[str, str]] = {
        "VMReady": "ssvm", "SSHReady": "ssvm", "UpToDate": "ssvm",
        "StoresMounted": "guest", "FirewallProgrammed": "guest", "Healthy": "guest",
        "Ready": "ssvm",
    }

    spec: SecondaryStorageVMSpec
    status: SecondaryStorageVMStatus | None = None


# The conditions the guest controller writes on an SSVM; the SSVM's Ready summarises them once it runs.
GUEST_CONDITIONS = tuple(t for t, owner in SecondaryStorageVM.CONDITIONS.items() if owner == "guest")
# The status fields the guest controller writes on an SSVM, besides its conditions.
GUEST_STATUS = frozenset({"actions", "hostKeyFingerprint", "health", "observedCheckRequest", "observedDiagnosticsRequest",
                          "diagnostics"})
