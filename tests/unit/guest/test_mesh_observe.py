"""The mesh learns a change from one SSVM's event without listing every SSVM again."""
from __future__ import annotations

from ssvm_operator.controllers.guest.actions import SSVMAddress
from ssvm_operator.controllers.guest.mesh import Mesh


def test_one_ssvms_event_is_a_change_only_when_its_membership_or_address_changes():
    listed, told = [0], []
    world = {("ns", "a"): SSVMAddress("ns", "a", "Running", "10.0.0.1")}

    def source():
        listed[0] += 1
        return list(world.values())

    mesh = Mesh(source)
    mesh.listeners.append(lambda: told.append(mesh.version))
    assert mesh.observe(world[("ns", "a")]) is False, "the starting picture is not a change"
    assert listed == [1]
    assert mesh.observe(SSVMAddress("ns", "b", "Starting", "10.0.0.2")) is False, "not up yet"
    assert mesh.observe(SSVMAddress("ns", "b", "Running", "10.0.0.2")) is True
    assert mesh.observe(SSVMAddress("ns", "b", "Running", "10.0.0.2")) is False, "the same again"
    assert mesh.observe(SSVMAddress("ns", "a", "Running", "10.0.0.9")) is True, "a new address"
    assert mesh.observe(SSVMAddress("ns", "b", None, None)) is True, "deleted"
    assert mesh.observe(SSVMAddress("ns", "b", None, None)) is False
    assert listed == [1], "events after the first never list every SSVM"
    assert told == [1, 2, 3]
    world[("ns", "c")] = SSVMAddress("ns", "c", "Running", "10.0.0.3")
    assert mesh.observe() is True, "a full read still finds what changed"
    assert mesh.peers("ns", "a") == ["10.0.0.3"]


def test_peers_are_every_other_up_address_sorted_once_per_change():
    world = {("ns", n): SSVMAddress("ns", n, "Running", ip) for n, ip in
             (("a", "10.0.0.10"), ("b", "10.0.0.9"), ("c", "10.0.0.9"), ("d", "10.0.1.1"))}
    mesh = Mesh(lambda: list(world.values()))
    assert mesh.peers("ns", "a") == ["10.0.0.9", "10.0.1.1"], "numeric order, unique"
    assert mesh.peers("ns", "b") == ["10.0.0.9", "10.0.0.10", "10.0.1.1"], "an address another SSVM holds too stays"
    assert mesh.peers("other", "x") == ["10.0.0.9", "10.0.0.10", "10.0.1.1"]
    mesh.observe(SSVMAddress("ns", "d", "Stopping", "10.0.1.1"))
    mesh.observe(SSVMAddress("ns", "e", "Running", "10.0.0.2"))
    assert mesh.peers("ns", "a") == ["10.0.0.2", "10.0.0.9"], "the next call after a change sorts again"


def test_a_large_mesh_waits_longer_before_allow_lists_are_pushed_again():
    world = {("ns", f"s{i}"): SSVMAddress("ns", f"s{i}", "Running", f"10.0.{i // 250}.{i % 250}") for i in range(1000)}
    mesh = Mesh(lambda: list(world.values()), max_delay=10.0)
    assert mesh.longest_wait == 10.0, "nothing observed yet"
    mesh.observe()
    assert mesh.longest_wait == 30.0, "1,000 SSVMs: 30 ms each"
    for i in range(900):
        mesh.observe(SSVMAddress("ns", f"s{i}", None, None))
    assert mesh.longest_wait == 10.0
