"""One pass of an SSVM: observe its VM, plan (lifecycle), act through the zone's backend, pass the
start gate, write status when it changed, post Events, and recreate a VM whose SSH never answers.

A reboot or recreate token is carried out once per process: until its acknowledgement is stored and
seen (a 409, a lagging watch), the unseen-writes record says it was acted on, so it is planned as
acknowledged and the acknowledgement written again.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator import metrics
from ssvm_operator.backends.base import BackendError, VMBackend
from ssvm_operator.backends.registry import BackendRegistry
from ssvm_operator.controllers.ssvm.lifecycle import (
    GateResult,
    LifecyclePlan,
    SSVMRequest,
    plan_ssvm_lifecycle,
    ssvm_status_patch,
    transition_events,
)
from ssvm_operator.controllers.ssvm.start_gate import StartGate
from ssvm_operator.controllers.ssvm.start_timeout import start_timeout_due
from ssvm_operator.controllers.ssvm.vm_request import VMRequestBuilder
from ssvm_operator.kube import events as ev
from ssvm_operator.kube.context import Kube
from ssvm_operator.kube.events import ref_of
from ssvm_operator.model.conditions import find_condition
from ssvm_operator.model.views import POOL_RESTART_ANNOTATION, is_ssvm_failure
from ssvm_operator.model.vm import ObservedVM, VMPhase

KIND = c.SSVM_KIND
GATE_TIMEOUT = 180.0   # a backstop: the login has its own deadlines; this also covers waiting for an SSH thread
STEADY = ("Running", "Stopped", "Error")


@dataclasses.dataclass(frozen=True)
class PassResult:
    steady: bool
    backoff_hint: float | None   # set when a backend call failed
    acted: bool


def bind(backend: VMBackend, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None) -> None:
    """Backends that map SSVMs onto hosts (external) learn which SSVM and zone a name is before acting on it."""
    binder = getattr(backend, "bind", None)
    if binder is not None:
        binder(ssvm, zone)


def held_backend_kind(ssvm: Mapping[str, Any], zone_kind: str) -> str | None:
    """The backend still holding the SSVM's VM when its zone has moved to another (None: the zone's own)."""
    recorded = ((ssvm.get("status") or {}).get("backendRef") or {}).get("backend")
    return recorded if recorded and recorded != zone_kind else None


class SSVMReconciler:
    def __init__(self, kube: Kube, backends: BackendRegistry, gate: StartGate, requests: VMRequestBuilder) -> None:
        self.kube, self.backends, self.gate, self.requests = kube, backends, gate, requests
        self.last_errors: dict[tuple[str, str], str] = {}
        self.failures = ev.FailureEvents(is_ssvm_failure)
        self.gate_failing_since: dict[tuple[str, str, str], tuple[str | None, float]] = {}

    def forget(self, namespace: str, name: str) -> None:
        self.last_errors.pop((namespace, name), None)
        self.failures.forget((namespace, name))
        self.gate_failing_since.pop((KIND, namespace, name), None)

    def error_changed(self, namespace: str, name: str, reason: str | None) -> bool:
        """True when an error reason differs from the last one seen: Events only on change, never a flood."""
        before = self.last_errors.get((namespace, name))
        if reason is None:
            self.last_errors.pop((namespace, name), None)
        else:
            self.last_errors[(namespace, name)] = reason
        return reason is not None and reason != before

    async def _act(self, backend: VMBackend, plan: LifecyclePlan, ssvm: Mapping[str, Any], zone: Mapping[str, Any],
                   held: VMBackend | None = None) -> None:
        """Carries out the plan; `held` is the backend still running the VM after the zone moved to `backend`:
        everything but ensure acts there, so a recreate destroys the old VM and creates the new one."""
        ns, name = ssvm["metadata"]["namespace"], ssvm["metadata"]["name"]
        for action in plan.actions:
            if action.kind == "ensure":
                await backend.ensure(await self.requests.build(ssvm, zone, bool(action.running)))
            elif action.kind in ("start", "stop", "reboot", "destroy"):
                await getattr(held or backend, action.kind)(ns, name)

    async def _gate(self, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None, observed: ObservedVM | None,
                    backend: VMBackend) -> GateResult:
        if observed is None or observed.phase != VMPhase.RUNNING:
            return GateResult(False, "VMNotRunning", "The VM is not running.")
        try:
            return await asyncio.wait_for(self.gate.check(ssvm=ssvm, zone=zone, observed=observed, backend=backend), GATE_TIMEOUT)
        except asyncio.TimeoutError:
            return GateResult(False, "StartGateTimeout", f"The start gate did not answer within {GATE_TIMEOUT:.0f}s.")
        except Exception as e:  # noqa: BLE001 - a failing gate holds the SSVM in Starting, it never crashes the loop
            return GateResult(False, "StartGateError", str(e)[:300])

    def plan_once(self, ns: str, name: str, req: SSVMRequest, observed: ObservedVM | None, zone_found: bool,
                   zone_enabled: bool) -> LifecyclePlan:
        """The lifecycle plan, never repeating a reboot or recreate this process already carried out."""
        unseen = self.kube.unseen
        repeat_reboot = req.reboot_pending and unseen.was_acted(KIND, ns, name, "reboot", req.reboot_request)
        repeat_recreate = bool(req.recreate_request) and req.recreate_request != req.observed_recreate \
            and unseen.was_acted(KIND, ns, name, "recreate", req.recreate_request)
        if not (repeat_reboot or repeat_recreate):
            return plan_ssvm_lifecycle(req, observed, zone_found=zone_found, zone_enabled=zone_enabled)
        settled = dataclasses.replace(req, observed_reboot=req.reboot_request if repeat_reboot else req.observed_reboot,
                                      observed_recreate=req.recreate_request if repeat_recreate else req.observed_recreate)
        plan = plan_ssvm_lifecycle(settled, observed, zone_found=zone_found, zone_enabled=zone_enabled)
        return dataclasses.replace(plan, ack_reboot=plan.ack_reboot or (req.reboot_request if repeat_reboot else None),
                                   ack_recreate=plan.ack_recreate or (req.recreate_request if repeat_recreate else None))

    def remember_acted(self, ns: str, name: str, plan: LifecyclePlan) -> None:
        for what, token in (("reboot", plan.ack_reboot), ("recreate", plan.ack_recreate)):
            if token:
                self.kube.unseen.acted(KIND, ns, name, what, token)

    async def _start_timed_out(self, ssvm: Mapping[str, Any], zone_spec: Mapping[str, Any], observed: ObservedVM,
                               gate: GateResult) -> bool:
        """Recreates (by a recreate request) a running VM whose start gate has failed for the zone's start timeout."""
        meta = ssvm["metadata"]
        timeout = float(((zone_spec.get("secondaryStorage") or {}).get("health") or {}).get("startTimeoutSeconds", 600))
        if not start_timeout_due(self.gate_failing_since, (KIND, meta["namespace"], meta["name"]), observed.instance_id,
                                 not gate.passed, gate.reason, time.monotonic(), timeout):
            return False
        await self.request_recreate(ssvm, f"start-timeout-{int(time.time())}")
        return True

    async def request_recreate(self, ssvm: Mapping[str, Any], token: str) -> None:
        """Asks for a new VM through the SSVM's own recreateRequest, as a user would."""
        meta = ssvm["metadata"]
        response = await self.kube.client.patch(c.SSVM_PLURAL, meta["namespace"], meta["name"], {"spec": {"recreateRequest": token}})
        self.kube.unseen.record(KIND, meta["namespace"], meta["name"], (meta.get("resourceVersion"),), response)
        self.kube.wakeups.wake((KIND, meta["namespace"], meta["name"]))

    async def run(self, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None, logger: Any) -> PassResult:
        meta = ssvm["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if meta.get("deletionTimestamp"):
            return PassResult(True, None, False)
        self.failures.seen((ns, name), find_condition((ssvm.get("status") or {}).get("conditions"), "Ready"))
        zone_spec = (zone or {}).get("spec") or {}
        zone_found = zone is not None
        zone_enabled = (zone_spec.get("secondaryStorage") or {}).get("enabled", True)
        req = SSVMRequest.from_body(ssvm, zone_spec)
        backend = self.backends.for_zone(zone_spec) if zone_found else None
        kind = self.backends.kind_of(zone_spec)
        held_kind = held_backend_kind(ssvm, kind) if backend is not None else None
        held = self.backends.for_kind(held_kind) if held_kind else None
        error: tuple[str, str] | None = None
        hint: float | None = None
        observed: ObservedVM | None = None
        failed_action = ""
        if backend is not None:
            for each in (held, backend):
                if each is not None:
                    bind(each, ssvm, zone)
            try:
                observed = await (held or backend).observe(ns, name)
                if held is not None and observed.phase == VMPhase.ABSENT:   # nothing left on the old backend
                    held = None
                    observed = await backend.observe(ns, name)
            except BackendError as e:
                error, hint = (e.reason, e.message), e.retry_after
        plan = self.plan_once(ns, name, req, observed, zone_found, zone_enabled)
        acted = bool(plan.actions)
        if plan.actions and backend is not None and zone is not None:
            try:
                await self._act(backend, plan, ssvm, zone, held)
                self.remember_acted(ns, name, plan)
                if any(a.kind == "destroy" for a in plan.actions):
                    held = None   # the old backend's VM is gone: the SSVM now lives on the zone's
            except BackendError as e:
                error, hint = (e.reason, e.message), e.retry_after
                failed_action = plan.actions[0].kind if len(plan.actions) == 1 else "recreate"
                plan = dataclasses.replace(plan, ack_reboot=None, ack_recreate=None, events=(), set_desired_state=None)
            try:
                observed = await (held or backend).observe(ns, name)
            except BackendError as e:
                error, hint = error or (e.reason, e.message), hint or e.retry_after
        if held is not None:
            kind = held_kind or kind   # backendRef keeps naming where the VM is until it is replaced
        if plan.set_desired_state or plan.clear_pool_restart:
            patch: dict[str, Any] = {}
            if plan.set_desired_state:
                patch["spec"] = {"desiredState": plan.set_desired_state}
            if plan.clear_pool_restart:
                patch["metadata"] = {"annotations": {POOL_RESTART_ANNOTATION: None}}
            response = await self.kube.client.patch(c.SSVM_PLURAL, ns, name, patch)
            self.kube.unseen.record(KIND, ns, name, (meta.get("resourceVersion"),), response)
            ssvm = response
        gate = await self._gate(ssvm, zone, observed, held or backend) if backend is not None else GateResult(False, "ZoneNotFound")
        written = await self.kube.status.write(c.SSVM_PLURAL, ssvm, lambda status, current: ssvm_status_patch(
            status, dataclasses.replace(req, generation=current["metadata"].get("generation")), observed, gate, plan=plan,
            zone_found=zone_found, backend_kind=kind, error=error))
        old_state = (ssvm.get("status") or {}).get("state")
        events = list(plan.events) + list(transition_events(name, old_state, written.get("state", old_state)))
        ready_now = find_condition(written.get("conditions") or (ssvm.get("status") or {}).get("conditions"), "Ready")
        metrics.set_ssvm(ns, (ssvm.get("spec") or {}).get("zoneRef", ""), name, ready=(ready_now or {}).get("status") == "True",
                         state=written.get("state", old_state))
        if "conditions" in written:   # a backend error has its own Warning below: not a second one for it
            events += [e for e in self.failures.changed((ns, name), name, find_condition(written["conditions"], "Ready"))
                       if error is None or e.reason != error[0]]
        if self.error_changed(ns, name, error[0] if error else None):
            reason = ev.SSVM_CREATE_FAILED if failed_action in ("ensure", "recreate") else (
                ev.SSVM_START_FAILED if failed_action == "start" else ev.BACKEND_ERROR)
            events.append(ev.EventSpec(reason, f"{name}: {error[0]}: {error[1]}"[:1024], "Warning"))
            logger.warning("SSVM %s: backend %s failed: %s", name, failed_action or "observe", error[1])
        if observed is not None and observed.phase == VMPhase.RUNNING and await self._start_timed_out(ssvm, zone_spec, observed, gate):
            events.append(ev.EventSpec(ev.SSVM_START_FAILED, f"{name}: SSH on {c.SSH_PORT} did not answer in time ({gate.reason}: "
                                       f"{gate.message})"[:900] + "; recreating the VM.", "Warning"))
        self.kube.events.post(events, ref_of(ssvm, KIND), ref_of(zone, c.ZONE_KIND))
        state = written.get("state", old_state)
        steady = error is None and state in STEADY and not (observed and observed.phase == VMPhase.RUNNING and not gate.passed)
        return PassResult(steady, hint if error else None, acted)
