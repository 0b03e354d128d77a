"""The in-memory backend's state machine: boot steps, stop, reboot, destroy, failures, persistence."""
from __future__ import annotations

import pytest

from ssvm_operator.backends.base import BackendError, VMBackend

from ssvm_operator.model.vm import VMPhase, VMRequest
from tests.support.requests import vm_request
from ssvm_operator.backends.memory import ManualClock, MemoryBackend, load_saved_vms

P = VMPhase


def request(name="vm1", running=True) -> VMRequest:
    return vm_request(name, running=running)


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def backend(clock):
    return MemoryBackend(clock=clock, step_seconds=1.0, create_steps=(P.PROVISIONING,), boot_steps=(P.STARTING,))


def test_implements_the_interface(backend):
    assert isinstance(backend, VMBackend)


async def test_create_walks_the_boot_steps(backend, clock):
    first = await backend.ensure(request())
    assert first.phase == P.PROVISIONING
    seen = []
    for _ in range(3):
        seen.append((await backend.observe("ns", "vm1")).phase)
        clock.advance(1.0)
    assert seen == [P.PROVISIONING, P.STARTING, P.RUNNING]
    running = await backend.observe("ns", "vm1")
    assert running.nics["control"].ip and running.instance_id == "vm1-1"


async def test_ensure_is_idempotent_and_stopped_create_ends_stopped(backend, clock):
    await backend.ensure(request(running=False))
    await backend.ensure(request(running=False))
    clock.advance(5)
    assert backend.phase("ns", "vm1") == P.STOPPED and len(backend.vms) == 1


async def test_stop_start_reboot(backend, clock):
    await backend.ensure(request())
    clock.advance(5)
    await backend.stop("ns", "vm1")
    assert backend.phase("ns", "vm1") == P.STOPPING
    clock.advance(1)
    assert backend.phase("ns", "vm1") == P.STOPPED
    await backend.start("ns", "vm1")
    assert backend.phase("ns", "vm1") == P.STARTING
    clock.advance(1)
    before = (await backend.observe("ns", "vm1")).instance_id
    await backend.reboot("ns", "vm1")
    clock.advance(1)
    after = await backend.observe("ns", "vm1")
    assert after.phase == P.RUNNING and after.instance_id != before


async def test_destroy_is_idempotent(backend):
    await backend.ensure(request())
    await backend.destroy("ns", "vm1")
    await backend.destroy("ns", "vm1")
    assert (await backend.observe("ns", "vm1")).phase == P.ABSENT


async def test_injected_failures_raise_backend_errors_the_given_number_of_times(backend):
    backend.inject_failure("ensure", name="vm1", reason="QuotaExceeded", times=2)
    for _ in range(2):
        with pytest.raises(BackendError) as err:
            await backend.ensure(request())
        assert err.value.reason == "QuotaExceeded"
    await backend.ensure(request())
    await backend.ensure(request("vm2"))
    assert backend.calls["ensure"] == 4


async def test_start_of_missing_vm_fails(backend):
    with pytest.raises(BackendError):
        await backend.start("ns", "nope")


async def test_boot_failure_ends_failed_then_a_restart_boots(backend, clock):
    backend.fail_boot("vm1", "ErrImagePull")
    await backend.ensure(request())
    clock.advance(5)
    failed = await backend.observe("ns", "vm1")
    assert (failed.phase, failed.reason) == (P.FAILED, "ErrImagePull")
    await backend.start("ns", "vm1")
    clock.advance(5)
    assert backend.phase("ns", "vm1") == P.RUNNING


async def test_readiness_follows_configuration(clock):
    assert (await MemoryBackend(clock=clock).readiness("ns", "z", {})).can_run_vms
    r = await MemoryBackend(clock=clock, template_ready=False).readiness("ns", "z", {})
    assert (r.can_run_vms, r.template_ready) == (True, False)
    assert not (await MemoryBackend(clock=clock, can_run_vms=False).readiness("ns", "z", {})).can_run_vms


async def test_state_file_keeps_vms_across_instances(tmp_path, clock):
    path = str(tmp_path / "vms.json")
    one = MemoryBackend(clock=clock, state_path=path, step_seconds=1.0)
    await one.ensure(request("a"))
    await one.ensure(request("b", running=False))
    clock.advance(10)
    two = MemoryBackend(clock=clock, state_path=path)
    assert {k[1]: two.phase(*k) for k in two.vms} == {"a": P.RUNNING, "b": P.STOPPED}
    await two.destroy("ns", "a")
    assert set(k[1] for k in MemoryBackend(clock=clock, state_path=path).vms) == {"b"}


async def test_listeners_hear_changes(backend):
    heard = []
    backend.subscribe(lambda ns, name: heard.append(name))
    await backend.ensure(request())
    await backend.destroy("ns", "vm1")
    assert heard[:1] == ["vm1"] and heard[-1] == "vm1"


def test_memory_vm_reports_its_spec_hash_and_restart_required():
    import asyncio

    from ssvm_operator.model.vm import VMRequest
    from ssvm_operator.backends.memory import ManualClock, MemoryBackend

    clock = ManualClock()
    backend = MemoryBackend(clock=clock, step_seconds=1.0)

    def request(spec_hash: str) -> VMRequest:
        return vm_request("vm", spec_hash=spec_hash)

    async def run() -> None:
        await backend.ensure(request("a.b"))
        clock.advance(10)
        seen = await backend.observe("ns", "vm")
        assert (seen.phase, seen.spec_hash, seen.restart_required) == (VMPhase.RUNNING, "a.b", False)
        await backend.ensure(request("c.b"))   # the spec changes under the running instance
        seen = await backend.observe("ns", "vm")
        assert (seen.spec_hash, seen.restart_required) == ("c.b", True)
        await backend.reboot("ns", "vm")
        clock.advance(10)
        seen = await backend.observe("ns", "vm")
        assert (seen.phase, seen.restart_required) == (VMPhase.RUNNING, False)

    asyncio.run(run())


async def test_the_state_journal_appends_compacts_and_survives_a_torn_line(tmp_path, clock):
    path = tmp_path / "vms.json"
    one = MemoryBackend(clock=clock, state_path=str(path), step_seconds=1.0)
    for i in range(60):
        await one.ensure(request(f"vm{i}"))
    for i in range(50):
        await one.destroy("ns", f"vm{i}")
    lines = path.read_text().splitlines()
    assert len(lines) < 110 + 10, "the journal is compacted once it outgrows the VMs it describes"
    assert {k[1] for k in load_saved_vms(str(path))} == {f"vm{i}" for i in range(50, 60)}
    with open(path, "a") as f:
        f.write('{"vm": {"namespace": "ns", "na')   # a kill in the middle of a line
    two = MemoryBackend(clock=clock, state_path=str(path))
    assert {k[1] for k in two.vms} == {f"vm{i}" for i in range(50, 60)}
    await two.ensure(request("after"))
    assert {k[1] for k in load_saved_vms(str(path))} == {f"vm{i}" for i in range(50, 60)} | {"after"}
