"""The external-host backend against simulated hosts on loopback: observe, start/stop/reboot/destroy, pinning, failures."""
from __future__ import annotations

import asyncio
import random
import socket

import pytest
from ssvm_operator.backends.base import BackendError
from ssvm_operator.model.vm import VMPhase, VMRequest
from tests.support.requests import vm_request
from ssvm_operator.backends.external import ExternalBackend, choose_host
from ssvm_operator.ssh.channel import SSHGuestChannel, Timeouts
from ssvm_operator.ssh.keys import generate_keypair
from ssvm_devcluster.simserver import start_simulated_guest

FAST = Timeouts(connect=2, banner=3, auth=3, command=10, deadline=15)


def loopback() -> str:
    return f"127.91.{random.randint(0, 254)}.{random.randint(1, 254)}"


@pytest.fixture(scope="module")
def operator_key():
    return generate_keypair("operator")


@pytest.fixture
def hosts(tmp_path, operator_key):
    started, specs = [], []
    for i in range(2):
        key = generate_keypair(f"host-{i}")
        address = loopback()
        guest = start_simulated_guest(address, key.private_openssh, operator_key.public_openssh, tmp_path / f"h{i}", port=0)
        started.append(guest)
        specs.append({"name": f"host-{i}", "address": address, "port": guest.port, "hostKey": key.public_openssh})
    yield specs
    for guest in started:
        guest.stop()


def make_backend(operator_key) -> ExternalBackend:
    channel = SSHGuestChannel(operator_key.private_openssh, FAST)

    async def channels(zone, timeouts):
        return channel
    return ExternalBackend(channels)


def zone_spec(hosts):
    return {"secondaryStorage": {"backend": "external", "template": {"external": {"hosts": hosts}}}}


def request(name, hosts, running=True) -> VMRequest:
    return vm_request(name, running=running, zone_spec=zone_spec(hosts), spec_hash="a.b")


async def test_lifecycle_on_a_simulated_host(hosts, operator_key):
    backend = make_backend(operator_key)
    assert (await backend.observe("ns", "z-ssvm-1")).phase == VMPhase.ABSENT
    seen = await backend.ensure(request("z-ssvm-1", hosts))
    assert seen.phase == VMPhase.RUNNING and seen.backend_name == "host-0"   # slot 1 takes the first host
    assert seen.control_ip == hosts[0]["address"] and seen.nics["public"].ip == hosts[0]["address"]
    first = seen.instance_id
    assert first and (await backend.observe("ns", "z-ssvm-1")).instance_id == first
    await backend.reboot("ns", "z-ssvm-1")
    rebooted = await backend.observe("ns", "z-ssvm-1")
    assert rebooted.phase == VMPhase.RUNNING and rebooted.instance_id != first
    await backend.stop("ns", "z-ssvm-1")
    stopped = await backend.observe("ns", "z-ssvm-1")
    assert stopped.phase == VMPhase.STOPPED and not stopped.nics and stopped.reason == "ServiceStopped"
    await backend.start("ns", "z-ssvm-1")
    assert (await backend.observe("ns", "z-ssvm-1")).phase == VMPhase.RUNNING
    await backend.destroy("ns", "z-ssvm-1")
    assert (await backend.observe("ns", "z-ssvm-1")).phase == VMPhase.ABSENT
    # the host's service was stopped, not deleted: a new SSVM on it starts it again
    again = await backend.ensure(request("z-ssvm-1", hosts, running=False))
    assert again.phase == VMPhase.STOPPED


async def test_one_ssvm_per_host(hosts, operator_key):
    backend = make_backend(operator_key)
    assert (await backend.ensure(request("z-ssvm-2", hosts))).backend_name == "host-1"
    assert (await backend.ensure(request("mine", hosts))).backend_name == "host-0"
    with pytest.raises(BackendError) as e:
        await backend.ensure(request("z-ssvm-3", hosts))
    assert e.value.reason == "NoFreeExternalHost"


async def test_recorded_host_is_kept_after_a_restart(hosts, operator_key):
    backend = make_backend(operator_key)
    ssvm = {"metadata": {"namespace": "ns", "name": "z-ssvm-1"}, "spec": {},
            "status": {"backendRef": {"backend": "external", "name": "host-1"}}}
    backend.bind(ssvm, {"metadata": {"namespace": "ns", "name": "z"}, "spec": zone_spec(hosts)})
    seen = await backend.observe("ns", "z-ssvm-1")
    assert seen.backend_name == "host-1" and seen.phase == VMPhase.RUNNING and seen.spec_hash


async def test_wrong_pinned_key_is_host_key_mismatch(hosts, operator_key):
    wrong = [dict(hosts[0], hostKey=generate_keypair("other").public_openssh)]
    backend = make_backend(operator_key)
    with pytest.raises(BackendError) as e:
        await backend.ensure(request("z-ssvm-1", wrong))
    assert e.value.reason == "HostKeyMismatch"
    seen = await backend.observe("ns", "z-ssvm-1")
    assert seen.phase == VMPhase.FAILED and seen.reason == "HostKeyMismatch"


async def test_unreachable_host_fails_in_bounded_time(operator_key):
    sock = socket.socket()
    address = loopback()
    sock.bind((address, 0))
    port = sock.getsockname()[1]
    sock.close()   # nothing listens there now
    host = [{"name": "gone", "address": address, "port": port, "hostKey": generate_keypair().public_openssh}]
    backend = make_backend(operator_key)
    # wait_for is the cap: a failure that hung would end the test with TimeoutError
    with pytest.raises(BackendError) as e:
        await asyncio.wait_for(backend.ensure(request("z-ssvm-1", host)), 60)
    assert e.value.reason == "ConnectionRefused"
    seen = await asyncio.wait_for(backend.observe("ns", "z-ssvm-1"), 60)
    assert seen.phase == VMPhase.FAILED and seen.reason == "ConnectionRefused"


async def test_readiness(hosts, operator_key):
    assert (await ExternalBackend().readiness("ns", "z", zone_spec(hosts))).reason == "GuestOperationsOff"
    ready = await make_backend(operator_key).readiness("ns", "z", zone_spec(hosts))
    assert ready.can_run_vms and ready.template_ready
    assert (await make_backend(operator_key).readiness("ns", "z", zone_spec([]))).reason == "NoExternalHosts"


def test_choose_host_prefers_record_then_slot_then_first_free():
    hosts = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    assert choose_host("z-ssvm-2", "z", hosts, {})["name"] == "b"
    assert choose_host("z-ssvm-2", "z", hosts, {}, recorded="c")["name"] == "c"
    assert choose_host("z-ssvm-2", "z", hosts, {"b": "other"})["name"] == "a"
    assert choose_host("x", "z", hosts, {"a": "1", "b": "2", "c": "3"}) is None
