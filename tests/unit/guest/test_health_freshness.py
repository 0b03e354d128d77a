"""Health freshness with few writes: an unchanged result is rewritten only every 10 minutes; a checkRequest
token runs a check now and records it."""
from __future__ import annotations

from ssvm_operator.controllers.guest.status import health_status

from tests.support.guest_world import NS, run

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
