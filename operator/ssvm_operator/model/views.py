"""What the planners see: small immutable views built from the objects as stored (camelCase dicts)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ssvm_operator import constants as c

# Annotation the zone puts on an SSVM it restarts from the stopped pool (CloudStack's
# `secStorageVmFromStoppedPool`): if that start fails, the SSVM is destroyed and replaced.
POOL_RESTART_ANNOTATION = f"{c.GROUP}/restarted-from-pool"
# Annotation the zone puts on the SSVM it is replacing in a rolling update (value: the request token).
UPGRADING_ANNOTATION = f"{c.GROUP}/upgrading"

# CloudStack's scan counts these states; `Creating` (and no state yet) are in flight here because
# creation is asynchronous, and `Error` keeps its slot while its own handler retries with backoff.
COUNTED_STATES = ("Running", "Migrating", "Starting", "Stopped", "Stopping")
IN_FLIGHT_STATES = (None, "Creating", "Error")
NOT_UP_STATES = ("Destroyed",)  # an Error SSVM is retried (HA) in its slot, not doubled
# Ready reasons of an SSVM on its way up (booting, being configured): not a failure to report on the zone.
PROGRESS_REASONS = frozenset({
    "Creating", "Starting", "Stopping", "Stopped", "Migrating", "NotRunning", "VMNotRunning", "VMNotCreated", "VMProvisioning",
    "VMStarting", "VMStopping", "VMStopped", "VMMigrating", "NoControlAddress", "ConnectionRefused", "Unreachable", "Timeout",
})


def awaits_kopf_finalizer(meta: Mapping[str, Any]) -> bool:
    """kopf's finalizer is not on the object yet (and it is not being deleted): kopf's patch adding it fails if
    the object changes first, so a status write waits for it."""
    return c.FINALIZER not in (meta.get("finalizers") or ()) and not meta.get("deletionTimestamp")


def is_ssvm_failure(reason: str) -> bool:
    """An SSVM's Ready reason that names a failure, not progress (booting, being configured, stopped as asked)."""
    return bool(reason) and reason not in PROGRESS_REASONS and not reason.endswith("Pending")


# A zone's Ready reasons that are progress or a normal state, not a failure to announce.
ZONE_PROGRESS_REASONS = frozenset({"Progressing", "StoppingSSVMs", "NoImageStore", "Initializing"})


def is_zone_failure(reason: str) -> bool:
    return bool(reason) and reason not in ZONE_PROGRESS_REASONS


@dataclass(frozen=True)
class CondSpec:
    """A condition to set: type, status, reason, message (lastTransitionTime is the writer's business)."""

    type: str
    status: str
    reason: str
    message: str = ""


def _get(d: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(d, Mapping) or key not in d:
            return default
        d = d[key]
    return d if d is not None else default


@dataclass(frozen=True)
class ZoneView:
    namespace: str
    name: str
    enabled: bool = True
    backend: str = "kubevirt"
    min_running: int = 1
    max_count: int = 5
    session_max: int = 50
    standby_sessions: int = 10
    scale_in: bool = False
    template_configured: bool = False
    deleting: bool = False
    generation: int | None = None
    host_limit: int | None = None   # external backend: one SSVM per listed host

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "ZoneView":
        meta, spec = body.get("metadata", {}), body.get("spec") or {}
        ss = spec.get("secondaryStorage") or {}
        backend = ss.get("backend", "kubevirt")
        template = ss.get("template") or {}
        host_limit = None
        if backend == "external":
            host_limit = len(_get(template, "external", "hosts", default=[]) or [])
            configured = bool(host_limit)
        elif backend == "libvirt":
            lv = template.get("libvirt") or {}
            configured = bool((lv.get("image") or {}).get("rootDisk") and lv.get("networks"))
        else:
            kv = template.get("kubevirt") or {}
            configured = bool(kv.get("containerDiskImage") or kv.get("url"))
        return cls(
            namespace=meta.get("namespace", ""), name=meta["name"], enabled=ss.get("enabled", True), backend=backend,
            min_running=ss.get("minRunning", 1), max_count=ss.get("maxCount", 5), session_max=ss.get("sessionMax", 50),
            standby_sessions=ss.get("standbySessions", 10), scale_in=ss.get("scaleIn", False),
            template_configured=configured, deleting=bool(meta.get("deletionTimestamp")), generation=meta.get("generation"),
            host_limit=host_limit)


@dataclass(frozen=True)
class StoreView:
    name: str
    writable: bool = True
    protocol: str = "nfs"
    deleting: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "StoreView":
        spec = body.get("spec") or {}
        return cls(name=body["metadata"]["name"], writable=not spec.get("readOnly", False),
                   protocol=spec.get("protocol", "nfs"), deleting=bool(body["metadata"].get("deletionTimestamp")))


@dataclass(frozen=True)
class SSVMView:
    name: str
    role: str = "templateProcessor"
    desired_state: str = "Running"
    state: str | None = None
    managed: bool = True          # created by the operator for its zone (may be scaled in, restarted from the pool)
    deleting: bool = False
    active_sessions: int = 0
    pool_restart: bool = False
    ready: bool = False                # its Ready condition is True
    ready_reason: str = ""             # and its reason and message when it is False
    ready_message: str = ""
    up_to_date: str | None = None      # its UpToDate condition's status
    outdated_reason: str = ""          # and reason when False
    upgrading: str | None = None       # the rolling update's request token while it is being replaced
    observed_recreate: str | None = None
    observed_reboot: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "SSVMView":
        meta, spec, status = body.get("metadata", {}), body.get("spec") or {}, body.get("status") or {}
        labels = meta.get("labels") or {}
        conds = {x.get("type"): x for x in status.get("conditions") or [] if isinstance(x, Mapping)}
        up = conds.get("UpToDate") or {}
        return cls(
            name=meta["name"], role=spec.get("role", "templateProcessor"), desired_state=spec.get("desiredState", "Running"),
            state=status.get("state"), managed=labels.get(c.LABEL_MANAGED_BY) == c.MANAGED_BY,
            deleting=bool(meta.get("deletionTimestamp")),
            active_sessions=_get(status, "health", "activeSessions", default=0) or 0,
            pool_restart=POOL_RESTART_ANNOTATION in (meta.get("annotations") or {}),
            ready=(ready_cond := conds.get("Ready") or {}).get("status") == "True", up_to_date=up.get("status"),
            ready_reason=ready_cond.get("reason", "") if ready_cond.get("status") == "False" else "",
            ready_message=ready_cond.get("message", "") if ready_cond.get("status") == "False" else "",
            outdated_reason=up.get("reason", "") if up.get("status") == "False" else "",
            upgrading=(meta.get("annotations") or {}).get(UPGRADING_ANNOTATION),
            observed_recreate=status.get("observedRecreateRequest"), observed_reboot=status.get("observedRebootRequest"))

    @property
    def failing(self) -> bool:
        """Wanted running, and its Ready says a failure rather than progress (HostKeyMismatch, a missing Secret...)."""
        return not self.deleting and self.desired_state == "Running" and is_ssvm_failure(self.ready_reason)

    @property
    def counted(self) -> bool:
        return not self.deleting and self.state in COUNTED_STATES

    @property
    def in_flight(self) -> bool:
        return not self.deleting and self.state in IN_FLIGHT_STATES

    @property
    def up(self) -> bool:
        """Running, or on its way there."""
        return not self.deleting and self.desired_state == "Running" and self.state not in NOT_UP_STATES
