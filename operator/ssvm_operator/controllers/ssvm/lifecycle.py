"""One SSVM's lifecycle: what to do to its VM, and its status, from what the backend observes.

States follow CloudStack's comment: Creating -> Stopped/Starting -> Running, Running -> Stopping ->
Stopped, Migrating, Error (a failure the backend reports), Destroyed. An SSVM is Running only when
its VM runs *and* the start gate passed (SSH on the guest port, or the backend's readiness for guestless VMs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from ssvm_operator.model.vm import ObservedVM, VMPhase
from ssvm_operator.model.conditions import set_condition
from ssvm_operator.api.ssvm import GUEST_CONDITIONS
from ssvm_operator.kube import events as ev
from ssvm_operator.model.spec_hash import material_hash, up_to_date_condition
from ssvm_operator.model.views import POOL_RESTART_ANNOTATION, CondSpec

ActionKind = Literal["ensure", "start", "stop", "reboot", "destroy"]


@dataclass(frozen=True)
class VMAction:
    kind: ActionKind
    running: bool | None = None   # for ensure: the desired run state


@dataclass(frozen=True)
class GateResult:
    """The start gate's answer: may a VM the backend reports running be called Running?"""

    passed: bool
    reason: str = "StartGatePassed"
    message: str = ""
    condition: str | None = None   # a gate with a condition of its own (the SSH gate: SSHReady) has it written

# Conditions a gate-with-condition's guest operations keep; Ready is True only when each one is True.


@dataclass(frozen=True)
class SSVMRequest:
    """What the SSVM's spec, metadata and status ask for, as the lifecycle planner needs it."""

    name: str
    desired_state: str = "Running"
    reboot_request: str | None = None
    recreate_request: str | None = None
    observed_reboot: str | None = None
    observed_recreate: str | None = None
    state: str | None = None
    deleting: bool = False
    pool_restart: bool = False
    ha: bool = True
    generation: int | None = None
    spec_hash: str = ""   # core.rollout.material_hash of the template and offering it should run ("" without its zone)

    @classmethod
    def from_body(cls, body: Mapping[str, Any], zone_spec: Mapping[str, Any] | None = None) -> "SSVMRequest":
        meta, spec, status = body.get("metadata", {}), body.get("spec") or {}, body.get("status") or {}
        offering = spec.get("offering") or ((zone_spec or {}).get("secondaryStorage") or {}).get("offering") or {}
        return cls(
            name=meta["name"], desired_state=spec.get("desiredState", "Running"),
            reboot_request=spec.get("rebootRequest"), recreate_request=spec.get("recreateRequest"),
            observed_reboot=status.get("observedRebootRequest"), observed_recreate=status.get("observedRecreateRequest"),
            state=status.get("state"), deleting=bool(meta.get("deletionTimestamp")),
            pool_restart=POOL_RESTART_ANNOTATION in (meta.get("annotations") or {}), ha=offering.get("ha", True),
            generation=meta.get("generation"), spec_hash=material_hash(zone_spec, spec) if zone_spec else "")

    @property
    def reboot_pending(self) -> bool:
        return bool(self.reboot_request) and self.reboot_request != self.observed_reboot

    @property
    def recreate_pending(self) -> bool:
        return bool(self.recreate_request) and self.recreate_request != self.observed_recreate


@dataclass(frozen=True)
class LifecyclePlan:
    actions: tuple[VMAction, ...] = ()
    ack_reboot: str | None = None          # token to write to status.observedRebootRequest
    ack_recreate: str | None = None
    set_desired_state: str | None = None   # a reboot of a stopped SSVM starts it, as in CloudStack
    clear_pool_restart: bool = False
    events: tuple[ev.EventSpec, ...] = ()
    desired_running: bool = False


_RUNNING_SIDE = (VMPhase.RUNNING, VMPhase.STARTING, VMPhase.PROVISIONING, VMPhase.MIGRATING)


def plan_ssvm_lifecycle(req: SSVMRequest, observed: ObservedVM | None, *, zone_found: bool, zone_enabled: bool) -> LifecyclePlan:
    """`observed` None means the backend could not be asked: then nothing is done this pass."""
    desired_running = req.desired_state == "Running" and zone_found and zone_enabled and not req.deleting
    if req.deleting or not zone_found or observed is None:
        return LifecyclePlan(desired_running=desired_running)
    phase = observed.phase
    clear_pool = req.pool_restart and phase == VMPhase.RUNNING
    if req.recreate_pending:
        return LifecyclePlan(
            actions=(VMAction("destroy"), VMAction("ensure", running=desired_running)),
            ack_recreate=req.recreate_request, ack_reboot=req.reboot_request if req.reboot_pending else None,
            events=(ev.EventSpec(ev.SSVM_DESTROYED, f"VM of {req.name} destroyed for recreate request {req.recreate_request}."),
                    ev.EventSpec(ev.SSVM_CREATED, f"VM of {req.name} created again for recreate request {req.recreate_request}.")),
            desired_running=desired_running, clear_pool_restart=req.pool_restart)
    if req.reboot_pending:
        token = req.reboot_request
        if not zone_enabled:
            return LifecyclePlan(ack_reboot=token, desired_running=False, events=(ev.EventSpec(
                ev.SSVM_REQUEST_IGNORED, f"Reboot request {token} ignored: the zone disables SSVMs.", "Warning"),))
        if phase == VMPhase.ABSENT:
            action = VMAction("ensure", running=True)
        elif phase in _RUNNING_SIDE and req.desired_state == "Running":
            return LifecyclePlan(actions=(VMAction("reboot"),), ack_reboot=token, desired_running=True,
                                 events=(ev.EventSpec(ev.SSVM_REBOOTED, f"{req.name} rebooted for request {token}."),))
        else:
            action = VMAction("start")   # CloudStack: rebooting a VM that is not running starts it
        return LifecyclePlan(actions=(action,), ack_reboot=token, desired_running=True,
                             set_desired_state="Running" if req.desired_state != "Running" else None)
    if phase == VMPhase.ABSENT:
        return LifecyclePlan(actions=(VMAction("ensure", running=desired_running),), desired_running=desired_running)
    actions: tuple[VMAction, ...] = ()
    if desired_running:
        if phase == VMPhase.STOPPED:
            actions = (VMAction("start"),)
        elif phase == VMPhase.FAILED and req.ha and not req.pool_restart:
            actions = (VMAction("start"),)  # the offering's HA: Running -> HA -> Starting -> Running
    elif phase in (VMPhase.RUNNING, VMPhase.STARTING, VMPhase.PROVISIONING):
        actions = (VMAction("stop"),)
    return LifecyclePlan(actions=actions, desired_running=desired_running, clear_pool_restart=clear_pool)


_PHASE_STATE = {
    VMPhase.ABSENT: "Creating", VMPhase.PROVISIONING: "Creating", VMPhase.STARTING: "Starting",
    VMPhase.STOPPING: "Stopping", VMPhase.STOPPED: "Stopped", VMPhase.MIGRATING: "Migrating", VMPhase.FAILED: "Error",
}


def map_vm_state(phase: VMPhase, gate: GateResult) -> str:
    if phase == VMPhase.RUNNING:
        return "Running" if gate.passed else "Starting"
    return _PHASE_STATE[phase]


_VM_READY = {
    VMPhase.ABSENT: ("VMNotCreated", "No VM exists yet."), VMPhase.PROVISIONING: ("VMProvisioning", "The VM is being provisioned."),
    VMPhase.STARTING: ("VMStarting", "The VM is booting."), VMPhase.STOPPING: ("VMStopping", "The VM is stopping."),
    VMPhase.STOPPED: ("VMStopped", "The VM is stopped."), VMPhase.MIGRATING: ("VMMigrating", "The VM is migrating."),
    VMPhase.FAILED: ("VMFailed", "The VM failed."),
}


def _nics(observed: ObservedVM) -> dict[str, Any] | None:
    out = {}
    for traffic, nic in sorted(observed.nics.items()):
        entry = {k: v for k, v in (("ip", nic.ip), ("mac", nic.mac), ("network", nic.network)) if v}
        if entry:
            out[traffic] = entry
    return out or None


def ssvm_conditions(req: SSVMRequest, observed: ObservedVM | None, gate: GateResult, state: str | None, *, zone_found: bool,
                    desired_running: bool, error: tuple[str, str] | None) -> tuple[CondSpec, CondSpec]:
    if error is not None:
        vm_ready = CondSpec("VMReady", "False", error[0], error[1])
    elif observed is None and not zone_found:
        vm_ready = CondSpec("VMReady", "Unknown", "ZoneNotFound", "The zone is missing, so its backend is not known.")
    elif observed is None:
        vm_ready = CondSpec("VMReady", "Unknown", "BackendUnreachable", "The backend could not be asked.")
    elif observed.phase == VMPhase.RUNNING:
        vm_ready = CondSpec("VMReady", "True", "VMRunning", f"VM {observed.backend_name or req.name} is running.")
    else:
        reason, message = _VM_READY[observed.phase]
        vm_ready = CondSpec("VMReady", "False", observed.reason or reason, observed.message or message)
    if not zone_found:
        ready = CondSpec("Ready", "False", "ZoneNotFound", "The zone named in spec.zoneRef does not exist.")
    elif state == "Running" and desired_running:
        ready = CondSpec("Ready", "True", "Running", "The SSVM is running.")
    elif not desired_running and state == "Stopped":
        ready = CondSpec("Ready", "False", "Stopped", "The SSVM is stopped as desired.")
    elif observed is not None and observed.phase == VMPhase.RUNNING and not gate.passed:
        ready = CondSpec("Ready", "False", gate.reason, gate.message or "Waiting for the start gate.")
    else:   # a backend error names the failure; otherwise the state says where the SSVM is
        ready = CondSpec("Ready", "False", error[0] if error is not None else (state or "Creating"), vm_ready.message)
    return vm_ready, ready


def ssvm_status_patch(status: Mapping[str, Any] | None, req: SSVMRequest, observed: ObservedVM | None, gate: GateResult, *,
                      plan: LifecyclePlan, zone_found: bool, backend_kind: str, error: tuple[str, str] | None = None,
                      now: str | None = None) -> dict[str, Any]:
    """The status fields that differ from `status`: empty when nothing changed."""
    status = status or {}
    if observed is None:
        state = status.get("state")
    elif error is not None and req.pool_restart:
        state = "Error"   # a start from the stopped pool failed: the zone recycles it
    else:
        state = map_vm_state(observed.phase, gate)
    wanted: dict[str, Any] = {"observedGeneration": req.generation}
    if state is not None:
        wanted["state"] = state
    if plan.ack_reboot:
        wanted["observedRebootRequest"] = plan.ack_reboot
    if plan.ack_recreate:
        wanted["observedRecreateRequest"] = plan.ack_recreate
    if observed is not None:
        if observed.phase == VMPhase.ABSENT:
            wanted["nics"] = None
        else:
            wanted["nics"] = _nics(observed)
            ref = {"backend": backend_kind, "name": observed.backend_name or req.name}
            if observed.api_version:
                ref["apiVersion"] = observed.api_version
            if observed.kind:
                ref["kind"] = observed.kind
            wanted["backendRef"] = ref
    patch = {k: v for k, v in wanted.items() if status.get(k) != v and not (v is None and status.get(k) is None)}
    conditions = list(status.get("conditions") or [])
    for cond in ssvm_conditions(req, observed, gate, state, zone_found=zone_found, desired_running=plan.desired_running, error=error):
        if cond.type == "Ready" and cond.status == "True" and gate.condition:
            cond = _guest_summary(conditions) or cond
        conditions = set_condition(conditions, cond.type, cond.status, cond.reason, cond.message, req.generation, now)
    if observed is not None and zone_found:
        up = up_to_date_condition(req.spec_hash, observed)
        conditions = set_condition(conditions, up.type, up.status, up.reason, up.message, req.generation, now)
    if gate.condition and observed is not None:
        running = observed.phase == VMPhase.RUNNING
        conditions = set_condition(conditions, gate.condition, ("True" if gate.passed else "False") if running else "Unknown",
                                   gate.reason if running else "VMNotRunning", gate.message if running else "The VM is not running.",
                                   req.generation, now)
    if conditions != list(status.get("conditions") or []):
        patch["conditions"] = conditions
    return patch


def _guest_summary(conditions: list[dict[str, Any]]) -> CondSpec | None:
    """Ready=False naming the first guest condition that is not True (None: all are)."""
    for type_ in GUEST_CONDITIONS:
        cond = next((c for c in conditions if c.get("type") == type_), None)
        if cond is None or cond.get("status") != "True":
            if cond is not None and cond.get("status") == "False":
                return CondSpec("Ready", "False", cond.get("reason") or type_, cond.get("message") or "")
            return CondSpec("Ready", "False", f"{type_}Pending", f"Running; waiting for {type_}.")
    return None


def transition_events(name: str, old_state: str | None, new_state: str | None) -> tuple[ev.EventSpec, ...]:
    """Events for a state change the backend reported (requests post their own)."""
    if new_state == old_state or new_state is None:
        return ()
    if new_state == "Running":   # routine: on the SSVM alone (the zone's Ready and counts say it too)
        return (ev.EventSpec(ev.SSVM_STARTED, f"{name} is running.", on_zone=False),)
    if new_state == "Stopped" and old_state is not None:
        return (ev.EventSpec(ev.SSVM_STOPPED, f"{name} is stopped.", on_zone=False),)
    if new_state == "Error":
        return (ev.EventSpec(ev.SSVM_START_FAILED, f"{name} failed.", "Warning"),)
    return ()
