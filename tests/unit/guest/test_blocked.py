"""A missing or unusable copy password holds every push back, and the SSVM's conditions say why."""
from __future__ import annotations

import base64
import logging

from tests.support.guest_world import NS, make_world, run


def _cond(world, name, type_):
    return next((c for c in world.ssvm(name)["status"]["conditions"] if c["type"] == type_), {})


def test_a_missing_copy_password_secret_is_a_reason_until_it_exists(caplog):
    world = make_world()
    world.cluster.add_zone(NS, "z1", copyPasswordSecretRef={"name": "copy", "key": "password"})
    world.cluster.add_store(NS, "s1", "z1")
    world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", "127.61.0.11")
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.fake.pushes() == world.fake.pushes("info"), "nothing but the gate's info reached the guest"
    for type_ in ("StoresMounted", "FirewallProgrammed"):
        cond = _cond(world, "z1-ssvm-1", type_)
        assert (cond["status"], cond["reason"]) == ("False", "CopyPasswordSecretNotFound"), cond
        assert "copyPasswordSecretRef" in cond["message"]
    assert len([r for r in caplog.records if "CopyPasswordSecretNotFound" in r.getMessage()]) == 1, "logged once, not per pass"

    world.secrets.put(NS, {"metadata": {"name": "copy"}, "data": {"password": base64.b64encode(b"s3cret-pw").decode()}})
    world.ops.keys._cached.clear()   # what the key Secret's TTL does in the operator
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert world.fake.pushes("setup-store") == 1 and world.fake.pushes("vm-setup") == 1
    assert _cond(world, "z1-ssvm-1", "StoresMounted")["status"] == "True"
    assert _cond(world, "z1-ssvm-1", "FirewallProgrammed")["status"] == "True"
