"""An in-memory VM backend: a real state machine behind the VMBackend interface, for tests and demos.

VMs move through configurable boot steps on a clock (wall time, or a manual one in unit tests);
failures can be injected per operation and per VM; an optional journal file (one JSON line per change,
compacted as it grows) keeps the VMs across an operator restart, so a restarted operator finds the VMs
it made. Nothing here returns canned values:
every answer is the machine's current state.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ssvm_operator.backends.base import BackendError

from ssvm_operator.model.vm import BackendReadiness, NicInfo, ObservedVM, VMPhase, VMRequest

Listener = Callable[[str, str], None]
OPERATIONS = ("readiness", "ensure", "start", "stop", "reboot", "destroy", "observe")
TRAFFIC = ("public", "private", "storage", "control")


class ManualClock:
    """A clock that moves only when told to (unit tests)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class _Failure:
    operation: str
    name: str | None
    reason: str
    message: str
    times: int


@dataclass
class MemoryVM:
    namespace: str
    name: str
    running: bool
    steps: list[tuple[str, float]] = field(default_factory=list)  # (phase, when it starts), in order
    instance: int = 0
    failed_reason: str = ""
    spec_hash: str = ""        # VMRequest.spec_hash of the last ensure (the VM's "spec")
    instance_hash: str = ""    # the spec_hash its current instance booted with (differs: restart required)

    def phase_at(self, now: float) -> VMPhase:
        current = VMPhase.STOPPED
        for phase, at in self.steps:
            if at <= now:
                current = VMPhase(phase)
        return current


class MemoryBackend:
    name = "memory"

    def __init__(self, *, boot_steps: Sequence[VMPhase] = (VMPhase.STARTING,), create_steps: Sequence[VMPhase] = (VMPhase.PROVISIONING,),
                 step_seconds: float = 0.05, clock: Callable[[], float] = time.time, state_path: str | None = None,
                 can_run_vms: bool = True, template_ready: bool = True, subnet: str = "10.250") -> None:
        self.boot_steps = tuple(boot_steps)
        self.create_steps = tuple(create_steps)
        self.step_seconds = step_seconds
        self.clock = clock
        self.state_path = state_path
        self.can_run_vms = can_run_vms
        self.template_ready = template_ready
        self.subnet = subnet
        self.vms: dict[tuple[str, str], MemoryVM] = {}
        self.calls: dict[str, int] = {op: 0 for op in OPERATIONS}
        self._failures: list[_Failure] = []
        self._boot_failures: dict[str, tuple[str, int]] = {}
        self._listeners: list[Listener] = []
        self._journal_lines = 0
        self._load()

    # --- test controls ---
    def inject_failure(self, operation: str, *, name: str | None = None, reason: str = "InjectedFailure",
                       message: str = "injected failure", times: int = 1) -> None:
        """The next `times` calls of `operation` (for VM `name`, or any) raise BackendError(reason)."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        self._failures.append(_Failure(operation, name, reason, message, times))

    def clear_failures(self) -> None:
        self._failures.clear()
        self._boot_failures.clear()

    def fail_boot(self, name: str, reason: str = "BootFailed", times: int = 1) -> None:
        """The next `times` boots of VM `name` end in phase Failed instead of Running."""
        self._boot_failures[name] = (reason, times)

    def subscribe(self, listener: Listener) -> None:
        """`listener(namespace, name)` is called (on the event loop) whenever a VM's phase changes."""
        self._listeners.append(listener)

    def phase(self, namespace: str, name: str) -> VMPhase:
        vm = self.vms.get((namespace, name))
        return vm.phase_at(self.clock()) if vm else VMPhase.ABSENT

    # --- the interface ---
    async def readiness(self, namespace: str, zone_name: str, zone_spec: Mapping[str, Any]) -> BackendReadiness:
        self._call("readiness", zone_name)
        if not self.can_run_vms:
            return BackendReadiness(False, self.template_ready, "NoCapacity", "The in-memory backend is set to refuse VMs.")
        if not self.template_ready:
            return BackendReadiness(True, False, "TemplateNotReady", "The in-memory backend is set to have no template.")
        return BackendReadiness(True, True, "BackendReady", "The in-memory backend can run VMs.")

    async def ensure(self, request: VMRequest) -> ObservedVM:
        self._call("ensure", request.name)
        key = (request.namespace, request.name)
        vm = self.vms.get(key)
        now = self.clock()
        if vm is None:
            vm = MemoryVM(request.namespace, request.name, running=request.running, spec_hash=request.spec_hash)
            self.vms[key] = vm
            self._schedule(vm, [(p, now) for p in self.create_steps], then_boot=request.running)
        else:
            vm.spec_hash = request.spec_hash   # like a patched VirtualMachine: a running instance keeps the old spec
            if request.running != vm.running:
                (self._boot if request.running else self._halt)(vm)
        self._changed(vm)
        return self._observe(vm)

    async def start(self, namespace: str, name: str) -> None:
        vm = self._vm("start", namespace, name)
        if not vm.running or vm.phase_at(self.clock()) in (VMPhase.FAILED, VMPhase.STOPPED, VMPhase.STOPPING):
            self._boot(vm)
            self._changed(vm)

    async def stop(self, namespace: str, name: str) -> None:
        vm = self._vm("stop", namespace, name)
        if vm.running or vm.phase_at(self.clock()) not in (VMPhase.STOPPED, VMPhase.STOPPING):
            self._halt(vm)
            self._changed(vm)

    async def reboot(self, namespace: str, name: str) -> None:
        vm = self._vm("reboot", namespace, name)
        self._boot(vm)   # a new instance; starts a stopped VM
        self._changed(vm)

    async def destroy(self, namespace: str, name: str) -> None:
        self._call("destroy", name)
        if self.vms.pop((namespace, name), None) is not None:
            self._save({"gone": [namespace, name]})
            self._notify(namespace, name)

    async def observe(self, namespace: str, name: str) -> ObservedVM:
        self._call("observe", name)
        vm = self.vms.get((namespace, name))
        return self._observe(vm) if vm else ObservedVM(VMPhase.ABSENT, "VMNotCreated", "No VM exists.")

    # --- the state machine ---
    def _schedule(self, vm: MemoryVM, first: list[tuple[VMPhase, float]], *, then_boot: bool) -> None:
        steps = [(p.value, at) for p, at in first]
        at = steps[-1][1] + self.step_seconds if steps else self.clock()
        if then_boot:
            vm.instance += 1
            vm.instance_hash = vm.spec_hash
            reason, times = self._boot_failures.get(vm.name, ("", 0))
            for phase in self.boot_steps:
                steps.append((phase.value, at))
                at += self.step_seconds
            if times:
                self._boot_failures[vm.name] = (reason, times - 1)
                vm.failed_reason = reason
                steps.append((VMPhase.FAILED.value, at))
            else:
                vm.failed_reason = ""
                steps.append((VMPhase.RUNNING.value, at))
        else:
            steps.append((VMPhase.STOPPED.value, at))
        vm.steps = steps
        vm.running = then_boot

    def _boot(self, vm: MemoryVM) -> None:
        self._schedule(vm, [], then_boot=True)

    def _halt(self, vm: MemoryVM) -> None:
        now = self.clock()
        busy = vm.phase_at(now) not in (VMPhase.STOPPED, VMPhase.FAILED)
        self._schedule(vm, [(VMPhase.STOPPING, now)] if busy else [], then_boot=False)

    def _observe(self, vm: MemoryVM) -> ObservedVM:
        phase = vm.phase_at(self.clock())
        nics: dict[str, NicInfo] = {}
        if phase in (VMPhase.RUNNING, VMPhase.STARTING, VMPhase.MIGRATING, VMPhase.STOPPING):
            seed = int(hashlib.sha256(f"{vm.namespace}/{vm.name}".encode()).hexdigest()[:8], 16)
            for i, traffic in enumerate(TRAFFIC):
                host = seed % 250 + 2
                nics[traffic] = NicInfo(ip=f"{self.subnet}.{i * 50 + host % 50}.{host}",
                                        mac=f"02:00:{i:02x}:{(seed >> 16) & 0xff:02x}:{(seed >> 8) & 0xff:02x}:{seed & 0xff:02x}",
                                        network=f"memory-{traffic}")
        reason = vm.failed_reason if phase == VMPhase.FAILED else ""
        live = phase in (VMPhase.RUNNING, VMPhase.STARTING, VMPhase.MIGRATING)
        return ObservedVM(spec_hash=vm.spec_hash or None, restart_required=live and vm.instance_hash != vm.spec_hash,
                          phase=phase, reason=reason or "", message=f"in-memory VM, phase {phase.value}" if reason else "",
                          nics=nics, instance_id=f"{vm.name}-{vm.instance}" if vm.instance else None, backend_name=vm.name,
                          api_version="memory.ssvm.io/v1", kind="MemoryVM")

    def _vm(self, operation: str, namespace: str, name: str) -> MemoryVM:
        self._call(operation, name)
        vm = self.vms.get((namespace, name))
        if vm is None:
            raise BackendError("VMNotFound", f"no VM {namespace}/{name}", retry_after=1.0)
        return vm

    def _call(self, operation: str, name: str | None) -> None:
        self.calls[operation] += 1
        for failure in self._failures:
            if failure.operation == operation and failure.name in (None, name) and failure.times > 0:
                failure.times -= 1
                raise BackendError(failure.reason, failure.message, retry_after=0.2)

    def _changed(self, vm: MemoryVM) -> None:
        self._save({"vm": vm.__dict__})
        self._notify(vm.namespace, vm.name)
        if not self._listeners:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        now = self.clock()
        for _, at in vm.steps:   # wake listeners when each scheduled step begins (wall-clock only)
            if at > now:
                loop.call_later(at - now, self._notify, vm.namespace, vm.name)

    def _notify(self, namespace: str, name: str) -> None:
        for listener in list(self._listeners):
            listener(namespace, name)

    # --- persistence across operator restarts ---
    def _load(self) -> None:
        if self.state_path and os.path.exists(self.state_path):
            self.vms.update(load_saved_vms(self.state_path))
            self._journal_lines = 1 << 31   # the next change rewrites the file whole (a torn last line goes with it)

    def _save(self, change: dict[str, Any]) -> None:
        """Appends one change (O(1), durable before the call returns); rewrites the file whole once the
        journal is twice as long as the VMs it describes."""
        if not self.state_path:
            return
        if self._journal_lines > 2 * len(self.vms) + 100 or not os.path.exists(self.state_path):
            tmp = f"{self.state_path}.tmp"
            with open(tmp, "w") as f:
                f.writelines(json.dumps({"vm": vm.__dict__}) + "\n" for vm in self.vms.values())
            os.replace(tmp, self.state_path)   # atomic: a killed operator leaves the old or the new file
            self._journal_lines = len(self.vms)
            return
        with open(self.state_path, "a") as f:
            f.write(json.dumps(change) + "\n")
        self._journal_lines += 1


def load_saved_vms(path: str) -> dict[tuple[str, str], MemoryVM]:
    """The VMs a journal describes; a last line cut short by a kill is ignored."""
    vms: dict[tuple[str, str], MemoryVM] = {}
    if not os.path.exists(path):
        return vms
    with open(path) as f:
        for line in f:
            try:
                change = json.loads(line)
            except ValueError:
                continue
            if "gone" in change:
                vms.pop(tuple(change["gone"]), None)
                continue
            raw = change["vm"]
            vm = MemoryVM(raw["namespace"], raw["name"], raw["running"], [tuple(s) for s in raw["steps"]], raw["instance"],
                          raw.get("failed_reason", ""), raw.get("spec_hash", ""), raw.get("instance_hash", ""))
            vms[(vm.namespace, vm.name)] = vm
    return vms
