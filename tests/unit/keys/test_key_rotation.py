"""Rotating the operator's SSH key declared in its Secret: add, verify, promote, remove, on the fake guests."""
from __future__ import annotations

import base64
import json

from ssvm_operator.model.vm import VMRequest
from ssvm_operator.ssh import errors
from ssvm_operator.ssh.keys import generate_keypair
from ssvm_operator.controllers.keys.secrets import (
    OPERATOR_KEY_SECRET,
    PRIVATE,
    PUBLIC,
    RETIRED_ANNOTATION,
    secret_value,
)

from ssvm_operator.controllers.ssvm.vm_request import VMRequestBuilder
from tests.support.guest_world import NS, run

SSVMS = ("z1-ssvm-1", "z1-ssvm-2")


def _up(world):
    world.cluster.add_zone(NS, "z1")
    for i, name in enumerate(SSVMS):
        world.cluster.add_ssvm(NS, name, "z1", f"127.62.0.{i + 2}")

    async def go():
        for i, name in enumerate(SSVMS):
            assert (await world.cluster.bring_up(world.gate, NS, name, instance=f"vmi-{i}")).passed
        await world.step_all()
    run(go())
    return _secret(world)


def _secret(world):
    return world.secrets.secrets[(NS, OPERATOR_KEY_SECRET)]


def _add_next(world, private: str) -> None:
    """The user's edit: `ssh-privatekey.next` in the key Secret (the operator re-reads it after its cache TTL)."""
    secret = _secret(world)
    data = {**secret["data"], PRIVATE + ".next": base64.b64encode(private.encode()).decode()}
    world.secrets.put(NS, {**secret, "data": data})
    world.ops.keys.invalidate_operator_keys(NS, OPERATOR_KEY_SECRET)


def _key_calls(world, target):
    """(what, key) of each authorized-keys call to one guest."""
    out = []
    for c in world.fake.calls:
        if c.action == "authorized-keys" and c.target == f"{NS}/{target}":
            what = "add" if c.payload.get("add") else "remove" if c.payload.get("remove") else "list"
            out.append((what, c.key))
    return out


def _gates_pass(world) -> bool:
    async def go():
        results = []
        for i, name in enumerate(SSVMS):
            body = world.ssvm(name)
            world.ops.reach.pop((NS, name), None)   # a fresh login, not the cached pass
            results.append(await world.gate.check(ssvm=body, zone=world.cluster.zones[(NS, "z1")],
                                                  observed=world.cluster.observed(NS, name, f"vmi-{i}")))
        return all(g.passed for g in results)
    return run(go())


def _fp(world, name):
    return world.fake.authorized_fingerprints(f"{NS}/{name}")


def test_add_verify_promote_remove_in_that_order_with_no_downtime(world):
    secret = _up(world)
    old_fp = world.fake.calls[0].key
    new = generate_keypair("next")
    _add_next(world, new.private_openssh)
    assert _gates_pass(world)
    run(world.step_all())
    # Both guests accept both keys and the Secret holds the promoted key: the last verification promoted it.
    assert all(_fp(world, n) == sorted([old_fp, new.fingerprint]) for n in SSVMS)
    promoted = _secret(world)
    assert secret_value(promoted, PRIVATE) == new.private_openssh
    assert PRIVATE + ".next" not in promoted["data"]
    assert secret_value(promoted, PUBLIC).split()[:2] == new.public_openssh.split()[:2]
    assert promoted["metadata"]["annotations"][RETIRED_ANNOTATION] == old_fp
    assert _gates_pass(world)
    run(world.step_all())
    for name in SSVMS:
        assert _key_calls(world, name) == [("add", old_fp), ("list", new.fingerprint), ("remove", new.fingerprint)]
        assert _fp(world, name) == [new.fingerprint]
        assert world.ssvm(name)["status"]["sshKeys"]["accepted"] == [new.fingerprint]
    assert RETIRED_ANNOTATION not in _secret(world)["metadata"]["annotations"]
    reasons = [e["reason"] for e in world.cluster.events]
    assert [r for r in reasons if r.startswith("SSHKey")] == ["SSHKeyRotationStarted"] * 2 + ["SSHKeyPromoted"] * 2 + ["SSHKeyRotated"] * 2
    assert _gates_pass(world)
    # Steady state again: no key call at all.
    before = world.fake.pushes("authorized-keys")
    run(world.step_all())
    assert world.fake.pushes("authorized-keys") == before
    assert secret is not promoted


def test_a_guest_that_is_down_holds_promotion_back(world):
    _up(world)
    old_fp = world.fake.calls[0].key
    new = generate_keypair("next")
    _add_next(world, new.private_openssh)
    world.fake.set_down(f"{NS}/z1-ssvm-2", errors.Unreachable("no route"))
    run(world.step_all())
    run(world.step_all())
    assert secret_value(_secret(world), PRIVATE + ".next") == new.private_openssh   # not promoted
    assert _fp(world, "z1-ssvm-1") == sorted([old_fp, new.fingerprint])            # the old key stays meanwhile
    world.fake.set_down(f"{NS}/z1-ssvm-2", None)
    run(world.step_all())
    assert secret_value(_secret(world), PRIVATE) == new.private_openssh
    run(world.step_all())
    assert all(_fp(world, n) == [new.fingerprint] for n in SSVMS)


def test_a_restart_mid_rotation_recovers_when_a_guest_only_takes_the_next_key(world):
    _up(world)
    new = generate_keypair("next")
    _add_next(world, new.private_openssh)
    # A rotation cut short left one guest with the next key only: the current key no longer logs in there.
    world.fake.authorize(f"{NS}/z1-ssvm-1", new.public_openssh)
    world = world.restart()
    assert _gates_pass(world)   # SSHReady stays True: the gate falls back to the next key
    run(world.step_all())
    assert secret_value(_secret(world), PRIVATE) == new.private_openssh
    # Another restart between promotion and removal: the retired note in the Secret finishes the job.
    world = world.restart()
    assert _gates_pass(world)   # the lifecycle's gate first, as in the operator
    run(world.step_all())
    assert all(_fp(world, n) == [new.fingerprint] for n in SSVMS)
    assert RETIRED_ANNOTATION not in _secret(world)["metadata"]["annotations"]
    assert _gates_pass(world)


def test_new_vms_mid_rotation_get_both_keys(world):
    _up(world)
    new = generate_keypair("next")
    _add_next(world, new.private_openssh)
    body = world.ssvm("z1-ssvm-1")
    req = run(VMRequestBuilder(world.ops.keys).build(body, world.cluster.zones[(NS, "z1")], True))
    lines = req.operator_public_key.splitlines()
    assert len(lines) == 2 and lines[1].split()[:2] == new.public_openssh.split()[:2]


def test_no_private_key_in_status_events_or_logs(world, caplog):
    _up(world)
    old_private = secret_value(_secret(world), PRIVATE)
    new = generate_keypair("next")
    _add_next(world, new.private_openssh)
    for _ in range(3):
        run(world.step_all())
    dumped = json.dumps([b.get("status") for b in world.cluster.ssvms.values()]) + json.dumps(world.cluster.events) + caplog.text
    assert "sshKeys" in dumped and "SSHKeyRotated" in dumped
    for private in (old_private, new.private_openssh):
        for line in private.splitlines():
            if "-----" not in line and len(line) > 16:
                assert line not in dumped
