"""The coalesced firewall mesh (O(N) pushes for N SSVMs coming up together), health and recreation,
and secrets that never reach status, events or logs."""
from __future__ import annotations

import asyncio
import base64
import json

from ssvm_operator.controllers.keys.secrets import (
    copy_password_secret_name,
    host_key_secret_name,
    secret_value,
)

from tests.support.guest_world import NS, StopFlag, make_world, run

N = 10


def _ips(i):
    return f"127.61.0.{i + 10}"


async def _burst(world, n, stagger=0.0):
    """N SSVMs come up (the lifecycle's gate then Running) while their workers run, as in the operator."""
    stop = StopFlag()
    tasks = [asyncio.create_task(world.ops.run_worker(NS, f"z1-ssvm-{i}", stop)) for i in range(n)]
    for i in range(n):
        await world.cluster.bring_up(world.gate, NS, f"z1-ssvm-{i}", instance=f"vmi-{i}")
        await asyncio.sleep(stagger)

    def settled():
        return all((world.ssvm(f"z1-ssvm-{i}")["status"].get("actions") or {}).get("firewall", {}).get("appliedHash")
                   == (world.ssvm(f"z1-ssvm-{i}")["status"].get("actions") or {}).get("firewall", {}).get("desiredHash")
                   and len(_peers(world, i)) == n - 1 for i in range(n))
    for _ in range(400):
        if settled():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*tasks)
    return settled()


def _peers(world, i):
    path = world.fake.state_dir(f"{NS}/z1-ssvm-{i}") / "etc/ssvm-agent/copy-server.json"
    return json.loads(path.read_text())["allow"] if path.exists() else []


def test_n_ssvms_coming_up_together_cost_o_n_firewall_pushes():
    world = make_world(quiet=1.0, max_delay=10.0)
    world.cluster.add_zone(NS, "z1")
    for i in range(N):
        world.cluster.add_ssvm(NS, f"z1-ssvm-{i}", "z1", _ips(i))
    assert run(_burst(world, N, stagger=0.01))
    for i in range(N):
        assert _peers(world, i) == sorted((_ips(j) for j in range(N) if j != i), key=lambda ip: int(ip.rsplit(".", 1)[1]))
    pushes = world.fake.pushes("firewall")
    # Each SSVM programmed once with the full mesh; CloudStack's fan-out would cost N(N+1)/2 = 55.
    assert pushes == N, pushes


def test_without_coalescing_the_same_burst_costs_more_pushes():
    """The control: no quiet period, one join at a time, so the test above can fail."""
    world = make_world(quiet=0.0, max_delay=0.0)
    world.cluster.add_zone(NS, "z1")
    for i in range(N):
        world.cluster.add_ssvm(NS, f"z1-ssvm-{i}", "z1", _ips(i))
    assert run(_burst(world, N, stagger=0.05))
    assert world.fake.pushes("firewall") > N


def test_a_joining_ssvm_adds_one_push_per_peer_and_a_leaving_one_too():
    world = make_world()
    world.cluster.add_zone(NS, "z1")
    for i in range(3):
        world.cluster.add_ssvm(NS, f"z1-ssvm-{i}", "z1", _ips(i))
        run(world.cluster.bring_up(world.gate, NS, f"z1-ssvm-{i}"))
    run(world.step_all())
    base, checks = world.fake.pushes("firewall"), world.fake.pushes("check")
    run(world.step_all())
    assert world.fake.pushes("firewall") == base   # steady: nothing
    world.cluster.set_state(NS, "z1-ssvm-2", "Stopped")
    run(world.step_all())
    assert world.fake.pushes("firewall") == base + 2
    assert _peers(world, 0) == [_ips(1)]
    assert world.fake.pushes("check") == checks, "a new allow-list alone is no reason for a health check"


def _unhealthy(world, name):
    """The simulated guest's store goes missing: `check` fails."""
    state = world.fake.state_dir(f"{NS}/{name}") / "var/lib/ssvm-agent/simulated"
    mounts = state / "mounts.json"
    if mounts.exists():
        mounts.write_text("{}")


def test_unhealthy_for_threshold_checks_recreates_with_events():
    world = make_world()
    world.cluster.add_zone(NS, "z1", health={"intervalSeconds": 5, "failureThreshold": 3})
    world.cluster.add_store(NS, "s1", "z1")
    world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", _ips(1))
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.ssvm("z1-ssvm-1")["status"]["health"]["healthy"] is True
    sim = world.fake.state_dir(f"{NS}/z1-ssvm-1") / "var/lib/ssvm-agent/simulated"
    assert any(sim.iterdir()), "the simulated guest records its mounts"
    w = world.ops.workers[(NS, "z1-ssvm-1")]
    for expected in (1, 2):
        for f in sim.glob("mount*.json"):
            f.write_text("{}")
        w.next_check = 0.0
        run(world.ops.step(NS, "z1-ssvm-1"))
        health = world.ssvm("z1-ssvm-1")["status"]["health"]
        assert (health["healthy"], health["consecutiveFailures"]) == (False, expected), health
        cond = next(c for c in world.ssvm("z1-ssvm-1")["status"]["conditions"] if c["type"] == "Healthy")
        assert (cond["status"], cond["reason"]) == ("False", "Unhealthy")
        assert not world.cluster.recreates
    for f in sim.glob("mount*.json"):
        f.write_text("{}")
    w.next_check = 0.0
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert [r[1] for r in world.cluster.recreates] == ["z1-ssvm-1"]
    assert world.ssvm("z1-ssvm-1")["spec"]["recreateRequest"].startswith("unhealthy-")
    assert [e["reason"] for e in world.cluster.events] == ["SSVMUnhealthy", "SSVMRecreated"]
    assert world.ssvm("z1-ssvm-1")["status"]["health"]["consecutiveFailures"] == 0


def test_a_healthy_check_resets_the_count():
    world = make_world()
    world.cluster.add_zone(NS, "z1")
    world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", _ips(1))
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    world.ssvm("z1-ssvm-1")["status"]["health"]["consecutiveFailures"] = 2
    world.ops.workers[(NS, "z1-ssvm-1")].next_check = 0.0
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.ssvm("z1-ssvm-1")["status"]["health"]["consecutiveFailures"] == 0


def test_secrets_never_reach_status_events_or_logs(caplog):
    world = make_world()
    world.cluster.add_zone(NS, "z1", health={"intervalSeconds": 5, "failureThreshold": 1})
    world.cluster.add_store(NS, "s1", "z1")
    world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", _ips(1))
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    sim = world.fake.state_dir(f"{NS}/z1-ssvm-1") / "var/lib/ssvm-agent/simulated"
    for f in sim.glob("mount*.json"):
        f.write_text("{}")
    world.ops.workers[(NS, "z1-ssvm-1")].next_check = 0.0
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.cluster.events, "the recreate posted events to scan"
    secrets = world.secrets.secrets
    password = secret_value(secrets[(NS, copy_password_secret_name("z1"))], "password")
    host_private = secret_value(secrets[(NS, host_key_secret_name("z1-ssvm-1"))], "ssh-privatekey")
    op_private = secret_value(secrets[(NS, "ssvm-operator-ssh")], "ssh-privatekey")
    assert password and host_private and op_private
    # The password reached the guest (its credentials file holds a hash of it), so it was really sent.
    creds = world.fake.state_dir(f"{NS}/z1-ssvm-1") / "etc/ssvm-agent/copy-credentials.json"
    assert creds.exists() and password not in creds.read_text()
    dumped = json.dumps([list(world.cluster.ssvms.values()), list(world.cluster.stores_.values()), world.cluster.events, [c.payload for c in world.fake.calls]])
    logs = caplog.text + "".join(str(r.args) for r in caplog.records)
    needles = [password, host_private.strip(), op_private.strip(), base64.b64encode(password.encode()).decode()]
    needles += [line for line in host_private.splitlines() + op_private.splitlines() if len(line) > 20 and "-----" not in line]
    for needle in needles:
        assert needle not in dumped, "a secret in status/events/recorded payloads"
        assert needle not in logs, "a secret in the logs"


def test_a_check_that_finds_the_same_writes_nothing_new():
    from ssvm_operator.controllers.guest.status import health_status

    report = {"healthy": True, "activeSessions": 2, "checks": [{"name": "copyServer", "ok": True, "detail": "answered"}]}
    first = health_status(None, report, None, now="2026-01-01T00:00:00Z")
    assert health_status(first, report, None, now="2026-01-01T00:01:00Z") == first  # steady: identical, so no write
    busier = health_status(first, {**report, "activeSessions": 3}, None, now="2026-01-01T00:02:00Z")
    assert busier["lastCheckTime"] == "2026-01-01T00:02:00Z" and busier["activeSessions"] == 3
    failing = health_status(busier, {"healthy": False, "checks": [{"name": "copyServer", "ok": False, "detail": "down"}]},
                            None, now="2026-01-01T00:03:00Z")
    again = health_status(failing, {"healthy": False, "checks": [{"name": "copyServer", "ok": False, "detail": "down"}]},
                          None, now="2026-01-01T00:04:00Z")
    assert (failing["consecutiveFailures"], again["consecutiveFailures"]) == (1, 2)  # failures keep counting


def test_a_failed_check_right_after_configuring_is_repeated_soon_not_an_interval_later():
    from ssvm_operator.controllers.guest.worker import SETTLE_RECHECK_SECONDS, GuestOps, GuestSettings

    now = [1000.0]
    world = make_world()
    # The same world, but checking the copy server, which the fake guest does not run: the first check fails.
    world.ops = GuestOps(world.ops.cluster, world.ops.keys, world.ops.logins, world.ops.mesh, world.ops.reach,
                         GuestSettings(check_copy_server=True), clock=lambda: now[0])
    world.cluster.add_zone(NS, "z1", health={"intervalSeconds": 600, "failureThreshold": 3})
    world.cluster.add_store(NS, "s1", "z1")
    world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", _ips(1))
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.ssvm("z1-ssvm-1")["status"]["health"]["healthy"] is False
    assert world.ops.workers[(NS, "z1-ssvm-1")].next_check == now[0] + SETTLE_RECHECK_SECONDS
    now[0] += 100
    run(world.ops.step(NS, "z1-ssvm-1"))  # no push this time: a failing check waits the full interval
    assert world.ops.workers[(NS, "z1-ssvm-1")].next_check == now[0] + 600
