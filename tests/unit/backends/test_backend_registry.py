"""Backend selection per zone, the override, the external backend by default, unknown kinds, the default start gate."""
from __future__ import annotations

import pytest

from ssvm_operator.backends.base import BackendError

from ssvm_operator.model.vm import ObservedVM, VMPhase
from ssvm_operator.backends.memory import MemoryBackend
from ssvm_operator.backends.registry import BackendRegistry, UnimplementedBackend, backend_from_override
from ssvm_operator.controllers.ssvm.start_gate import BackendReadinessGate


def test_zone_spec_selects_the_backend_and_instances_are_reused():
    registry = BackendRegistry({"kubevirt": lambda: MemoryBackend(), "external": lambda: UnimplementedBackend("external", "later")})
    kv = registry.for_zone({"secondaryStorage": {"backend": "kubevirt"}})
    assert registry.for_zone({}) is kv
    assert isinstance(registry.for_zone({"secondaryStorage": {"backend": "external"}}), UnimplementedBackend)


def test_override_serves_every_zone():
    memory = MemoryBackend()
    registry = BackendRegistry.default(object(), memory)
    assert registry.for_zone({"secondaryStorage": {"backend": "external"}}) is memory


async def test_external_backend_is_built_and_wants_hosts():
    registry = BackendRegistry.default(object())
    backend = registry.for_zone({"secondaryStorage": {"backend": "external"}})
    assert backend.name == "external"
    readiness = await backend.readiness("ns", "z", {})
    assert (readiness.can_run_vms, readiness.template_ready, readiness.reason) == (False, False, "NoExternalHosts")
    with pytest.raises(BackendError):
        await backend.start("ns", "a")   # no host assigned
    await backend.destroy("ns", "a")   # nothing assigned: never fails a finalizer
    seen = []
    registry.attach_guest(seen)
    assert backend.channels is seen   # guest operations' channels reach a backend made before them


async def test_unknown_backend_kind_reports_not_implemented():
    backend = BackendRegistry({}).for_zone({"secondaryStorage": {"backend": "vmware"}})
    readiness = await backend.readiness("ns", "z", {})
    assert (readiness.can_run_vms, readiness.reason) == (False, "BackendNotImplemented")
    with pytest.raises(BackendError):
        await backend.start("ns", "a")
    await backend.destroy("ns", "a")


def test_override_spec():
    assert backend_from_override(None) is None
    mem = backend_from_override("memory:/tmp/x.json")
    assert isinstance(mem, MemoryBackend) and mem.state_path == "/tmp/x.json"
    with pytest.raises(ValueError):
        backend_from_override("vmware")


async def test_default_start_gate_is_the_backends_readiness():
    gate = BackendReadinessGate()
    assert (await gate.check(ssvm={}, zone=None, observed=ObservedVM(VMPhase.RUNNING), backend=MemoryBackend())).passed
    assert not (await gate.check(ssvm={}, zone=None, observed=ObservedVM(VMPhase.STARTING), backend=MemoryBackend())).passed
