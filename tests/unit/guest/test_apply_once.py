"""Each content is applied once per VM instance: a store seen late adds only itself, and a restart before
a result was recorded asks the guest again, which answers from its ledger without applying it twice."""
from __future__ import annotations

import collections
import json
import shutil

import pytest

from ssvm_operator.agent import cli as agent_cli

from tests.support.guest_world import NS, run


@pytest.fixture()
def applied(monkeypatch):
    """How many times each agent action really ran, per payload URL (setup-store) or action."""
    counts: collections.Counter = collections.Counter()
    for action in ("setup-store", "firewall", "vm-setup"):
        real = agent_cli.ACTIONS[action]

        def counting(ctx, payload, real=real, action=action):
            counts[(action, payload.get("url", ""))] += 1
            return real(ctx, payload)
        monkeypatch.setitem(agent_cli.ACTIONS, action, counting)
    return counts


def _zone(world, *stores):
    world.cluster.add_zone(NS, "z1")
    for s in stores:
        world.cluster.add_store(NS, s, "z1")
    world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", "127.60.0.2")
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1", instance="vmi-a"))


def test_a_store_seen_late_adds_only_itself(world, applied):
    _zone(world, "s1")
    run(world.ops.step(NS, "z1-ssvm-1"))
    world.cluster.add_store(NS, "s2", "z1")   # the index had one store at the first pass
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert applied[("setup-store", "nfs://nfs.example/export/s1")] == 1
    assert applied[("setup-store", "nfs://nfs.example/export/s2")] == 1
    assert world.fake.pushes("setup-store") == 2
    rec = world.ssvm("z1-ssvm-1")["status"]["actions"]["setupStore"]
    assert rec["appliedHash"] == rec["desiredHash"] and [e["store"] for e in rec["appliedStores"]] == ["s1", "s2"]


def test_a_restart_before_the_result_was_recorded_applies_nothing_twice_and_counts_the_attempt(world, applied):
    _zone(world, "s1", "s2")
    real_update = world.cluster.update_ssvm_status

    async def killed(*args, **kwargs):   # the operator dies after pushing, before its status write lands
        raise RuntimeError("SIGKILL")
    world.cluster.update_ssvm_status = killed
    with pytest.raises(RuntimeError):
        run(world.ops.step(NS, "z1-ssvm-1"))
    world.cluster.update_ssvm_status = real_update
    assert not world.ssvm("z1-ssvm-1")["status"].get("actions"), "nothing was recorded"

    restarted = world.restart()
    run(restarted.cluster.bring_up(restarted.gate, NS, "z1-ssvm-1", instance="vmi-a"))
    run(restarted.ops.step(NS, "z1-ssvm-1"))
    assert set(applied.values()) == {1}, applied   # each content ran once in the guest
    assert len(applied) == 4                       # two stores, firewall, vm-setup
    actions = world.ssvm("z1-ssvm-1")["status"]["actions"]
    for key in ("setupStore", "firewall", "vmSetup"):
        assert actions[key]["result"] == "Succeeded" and actions[key]["attempts"] == 2, (key, actions[key])
    ledger = json.loads(next(world.fake.state_dir(f"{NS}/z1-ssvm-1").rglob("ledger.json")).read_text())
    assert ledger["setup-store:s1"]["requests"] == 2 and ledger["firewall:"]["requests"] == 2


def test_a_new_instance_applies_everything_again(world, applied):
    _zone(world, "s1")
    run(world.ops.step(NS, "z1-ssvm-1"))
    for run_dir in world.fake.state_dir(f"{NS}/z1-ssvm-1").rglob("run"):
        shutil.rmtree(run_dir)   # the VM rebooted: its tmpfs (ledger, boot id) is gone
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1", instance="vmi-b"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert set(applied.values()) == {2}, applied
