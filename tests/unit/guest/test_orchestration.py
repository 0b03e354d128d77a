"""The order of guest actions, failures per store, pushes only on change, and a restart that re-pushes nothing."""
from __future__ import annotations

import shutil

import json

from ssvm_operator.ssh import errors

from tests.support.guest_world import NS, run


def _setup(world, stores=("s1", "s2"), **zone):
    world.cluster.add_zone(NS, "z1", **zone)
    for s in stores:
        world.cluster.add_store(NS, s, "z1")
    world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", "127.60.0.2")


def _cond(body, type_):
    return next((c for c in body["status"].get("conditions", []) if c["type"] == type_), {})


def test_actions_run_in_order_after_the_gate_and_are_recorded(world):
    _setup(world)

    async def go():
        gate = await world.cluster.bring_up(world.gate, NS, "z1-ssvm-1")
        assert gate.passed and gate.condition == "SSHReady", gate
        await world.ops.step(NS, "z1-ssvm-1")
    run(go())
    actions = [c.action for c in world.fake.calls]
    assert actions == ["info", "setup-store", "setup-store", "firewall", "vm-setup", "check"]
    st = world.ssvm("z1-ssvm-1")["status"]
    for key in ("setupStore", "firewall", "vmSetup"):
        rec = st["actions"][key]
        assert rec["result"] == "Succeeded" and rec["appliedHash"] == rec["desiredHash"] and rec["attempts"] == 1, (key, rec)
        assert rec["lastAttemptTime"]
    assert _cond(world.ssvm("z1-ssvm-1"), "StoresMounted")["status"] == "True"
    assert _cond(world.ssvm("z1-ssvm-1"), "FirewallProgrammed")["status"] == "True"
    assert _cond(world.ssvm("z1-ssvm-1"), "Healthy")["status"] == "True"
    assert st["hostKeyFingerprint"].startswith("SHA256:")
    assert st["health"]["healthy"] is True and st["health"]["consecutiveFailures"] == 0
    for s in ("s1", "s2"):
        store = world.cluster.stores_[(NS, s)]["status"]
        assert [m["ssvm"] for m in store["mounts"]] == ["z1-ssvm-1"]
        assert store["mounts"][0]["result"] == "Mounted" and "/mnt/SecStorage/" in store["mounts"][0]["parentDir"]
        assert store["parentDir"] == store["mounts"][0]["parentDir"]
        assert _cond(world.cluster.stores_[(NS, s)], "Mounted")["status"] == "True"
        assert _cond(world.cluster.stores_[(NS, s)], "Ready")["status"] == "True"


def test_a_failing_store_does_not_stop_the_others_or_the_rest(world):
    _setup(world, stores=("s1", "s2", "s3"))
    # The simulated guest's fault file: the NFS server of s2 refuses.
    faults = world.fake.state_dir("cloud/z1-ssvm-1") / "var/lib/ssvm-agent/simulated"
    faults.mkdir(parents=True, exist_ok=True)
    (faults / "faults.json").write_text(json.dumps({"mount": {"nfs.example:/export/s2": "mount.nfs: Connection refused"}}))

    async def go():
        await world.cluster.bring_up(world.gate, NS, "z1-ssvm-1")
        await world.ops.step(NS, "z1-ssvm-1")
    run(go())
    assert [c.action for c in world.fake.calls][:6] == ["info", "setup-store", "setup-store", "setup-store", "firewall", "vm-setup"]
    st = world.ssvm("z1-ssvm-1")["status"]
    rec = st["actions"]["setupStore"]
    assert rec["result"] == "Failed" and rec["reason"] == "Unreachable" and rec["appliedHash"] is None, rec
    assert "s2" in rec["message"]
    assert st["actions"]["firewall"]["result"] == "Succeeded" and st["actions"]["vmSetup"]["result"] == "Succeeded"
    stores = world.cluster.stores_
    assert stores[(NS, "s1")]["status"]["mounts"][0]["result"] == "Mounted"
    assert stores[(NS, "s3")]["status"]["mounts"][0]["result"] == "Mounted"
    failed = stores[(NS, "s2")]["status"]["mounts"][0]
    assert failed["result"] == "Failed" and failed["reason"] == "Unreachable"
    assert _cond(stores[(NS, "s2")], "Mounted")["status"] == "False"
    assert _cond(world.ssvm("z1-ssvm-1"), "StoresMounted")["reason"] == "Unreachable"
    # A retry while backing off pushes nothing; once the fault is gone and the backoff passed, it succeeds.
    before = world.fake.pushes("setup-store")
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.fake.pushes("setup-store") == before
    (faults / "faults.json").write_text("{}")
    world.ops.workers[(NS, "z1-ssvm-1")].retry_at.clear()
    run(world.ops.step(NS, "z1-ssvm-1"))
    rec = world.ssvm("z1-ssvm-1")["status"]["actions"]["setupStore"]
    assert rec["result"] == "Succeeded" and rec["attempts"] == 2   # the second try of the same content
    assert stores[(NS, "s2")]["status"]["mounts"][0]["result"] == "Mounted"


def test_pushes_only_on_change_and_a_restart_repushes_nothing(world):
    _setup(world)

    async def go(w):
        await w.cluster.bring_up(w.gate, NS, "z1-ssvm-1", instance="vmi-a")
        await w.ops.step(NS, "z1-ssvm-1")
    run(go(world))
    pushes = lambda: sum(world.fake.pushes(a) for a in ("setup-store", "firewall", "vm-setup"))
    first = pushes()
    assert first == 4
    run(world.ops.step(NS, "z1-ssvm-1"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert pushes() == first

    restarted = world.restart()
    run(restarted.cluster.bring_up(restarted.gate, NS, "z1-ssvm-1", instance="vmi-a"))   # the same VM instance
    run(restarted.ops.step(NS, "z1-ssvm-1"))
    assert pushes() == first, [c.action for c in world.fake.calls]

    # A new store: setup-store of that store only (the two set up already, firewall and vm-setup unchanged).
    world.cluster.add_store(NS, "s3", "z1")
    run(restarted.ops.step(NS, "z1-ssvm-1"))
    assert (world.fake.pushes("setup-store"), world.fake.pushes("firewall"), world.fake.pushes("vm-setup")) == (3, 1, 1)
    # A changed setting: only vm-setup.
    world.cluster.zones[(NS, "z1")]["spec"]["secondaryStorage"]["allowedInternalSites"] = ["192.0.2.0/24"]
    run(restarted.ops.step(NS, "z1-ssvm-1"))
    assert (world.fake.pushes("setup-store"), world.fake.pushes("firewall"), world.fake.pushes("vm-setup")) == (3, 1, 2)
    # A new VM instance (reboot/recreate): a new boot (its tmpfs gone), everything again.
    for run_dir in world.fake.state_dir(f"{NS}/z1-ssvm-1").rglob("run"):
        shutil.rmtree(run_dir)
    run(restarted.cluster.bring_up(restarted.gate, NS, "z1-ssvm-1", instance="vmi-b"))
    run(restarted.ops.step(NS, "z1-ssvm-1"))
    assert (world.fake.pushes("setup-store"), world.fake.pushes("firewall"), world.fake.pushes("vm-setup")) == (6, 2, 3)


def test_unreachable_guest_stops_the_sequence_and_reports_the_transport_reason(world):
    _setup(world, stores=("s1",))
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    world.fake.fail_next("cloud/z1-ssvm-1", errors.ConnectionRefused("127.60.0.2:3922: connection refused"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    st = world.ssvm("z1-ssvm-1")["status"]
    assert st["actions"]["setupStore"]["reason"] == "ConnectionRefused"
    assert st["actions"]["firewall"]["result"] == "Pending"    # not attempted: the guest was unreachable
    assert [c.action for c in world.fake.calls].count("firewall") == 0


def test_gate_reports_ssh_failures_as_sshready_reasons(world):
    _setup(world, stores=())
    world.fake.fail_next("cloud/z1-ssvm-1", errors.HostKeyMismatch("presented SHA256:x, pinned is SHA256:y"))
    gate = run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    assert (gate.passed, gate.reason, gate.condition) == (False, "HostKeyMismatch", "SSHReady")
    assert world.ssvm("z1-ssvm-1")["status"]["state"] == "Starting"
    world.fake.fail_next("cloud/z1-ssvm-1", errors.Timeout("no answer"))
    assert run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1")).reason == "Timeout"
    assert run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1")).passed
    run(world.ops.step(NS, "z1-ssvm-1"))
    cond = next(c for c in world.ssvm("z1-ssvm-1")["status"]["conditions"] if c["type"] == "StoresMounted")
    assert (cond["status"], cond["reason"]) == ("True", "NoNFSStores")


def test_not_running_resets_guest_conditions(world):
    _setup(world, stores=("s1",))
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    world.cluster.set_state(NS, "z1-ssvm-1", "Stopped")
    run(world.ops.step(NS, "z1-ssvm-1"))
    conds = {c["type"]: c for c in world.ssvm("z1-ssvm-1")["status"]["conditions"]}
    assert {conds[t]["status"] for t in ("StoresMounted", "FirewallProgrammed", "Healthy")} == {"Unknown"}
    assert conds["StoresMounted"]["reason"] == "NotRunning"
