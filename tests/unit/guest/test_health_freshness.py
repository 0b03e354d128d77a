"""Health freshness with few writes: an unchanged result is rewritten only every 10 minutes; a checkRequest
token runs a check now and records it; successful checks renew the start gate's pass, so a running guest
is not logged into for the gate again while they succeed."""
from __future__ import annotations

from ssvm_operator.controllers.guest.status import health_status

from tests.support.guest_world import NS, make_world, run

OK = {"healthy": True, "activeSessions": 0, "checks": [{"name": "dns", "ok": True, "detail": ""}]}


def test_an_unchanged_result_is_rewritten_every_ten_minutes_only():
    first = health_status(None, OK, None, now="2026-11-30T10:00:00Z")
    assert first["lastCheckTime"] == "2026-11-30T10:00:00Z"
    assert health_status(first, OK, None, now="2026-11-30T10:09:59Z") == first          # nothing to write
    beat = health_status(first, OK, None, now="2026-11-30T10:10:00Z")
    assert beat["lastCheckTime"] == "2026-11-30T10:10:00Z" and {**beat, "lastCheckTime": None} == {**first, "lastCheckTime": None}
    changed = health_status(first, None, ("Timeout", "no answer"), now="2026-11-30T10:00:30Z")
    assert changed["lastCheckTime"] == "2026-11-30T10:00:30Z" and not changed["healthy"]
    forced = health_status(first, OK, None, now="2026-11-30T10:00:05Z", force=True)
    assert forced["lastCheckTime"] == "2026-11-30T10:00:05Z"


def test_a_check_request_runs_a_check_now_and_is_acknowledged(world):
    world.cluster.add_zone(NS, "z1", health={"intervalSeconds": 3600})
    world.cluster.add_store(NS, "s1", "z1")
    world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", "127.60.0.9")
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    checks = world.fake.pushes("check")
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.fake.pushes("check") == checks, "the next check is an hour away"
    world.ssvm("z1-ssvm-1")["spec"]["checkRequest"] = "now-1"
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.fake.pushes("check") == checks + 1
    status = world.ssvm("z1-ssvm-1")["status"]
    assert status["observedCheckRequest"] == "now-1" and status["health"]["healthy"] is True
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.fake.pushes("check") == checks + 1, "a token is acted on once"


def test_health_checks_renew_the_start_gates_pass_and_a_silent_guest_is_verified_again():
    now = [5000.0]
    world = make_world(clock=lambda: now[0])
    try:
        world.cluster.add_zone(NS, "z1", health={"intervalSeconds": 60})
        world.cluster.add_store(NS, "s1", "z1")
        world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", "127.60.0.9")
        assert run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1", instance="vmi-a")).passed
        run(world.ops.step(NS, "z1-ssvm-1"))
        for _ in range(10):   # ten minutes of the lifecycle's passes beside the health checks
            now[0] += 60
            run(world.ops.step(NS, "z1-ssvm-1"))
            assert run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1", instance="vmi-a")).passed
        assert world.fake.pushes("info") == 1, "the gate logged in once; the checks kept its pass"
        assert world.fake.pushes("check") >= 10
        now[0] += 2 * 60 + 5   # no check confirmed the guest for two intervals: the gate logs in itself
        assert run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1", instance="vmi-a")).passed
        assert world.fake.pushes("info") == 2
    finally:
        world.fake.close()
