"""The real SSH channel against the simulated guest server, all on loopback addresses."""
from __future__ import annotations

from ssvm_operator.model.redaction import REDACTED

import asyncio
import json
import logging
import random
import socket
import threading

import pytest

from ssvm_operator.ssh import errors
from ssvm_operator.ssh.channel import GuestTarget, SSHGuestChannel, Timeouts
from tests.support.fake_guest import FakeGuestChannel
from ssvm_operator.ssh.keys import generate_keypair
from tests.support.rotation import rotate_operator_key
from ssvm_devcluster.simserver import start_simulated_guest

FAST = Timeouts(connect=2, banner=2, auth=3, command=10, deadline=15)
PASSWORD = "Tr0ub4dor&3-copy"


def loopback_address() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"


@pytest.fixture(scope="module")
def operator_key():
    return generate_keypair("operator")


@pytest.fixture
def guest(tmp_path, operator_key):
    host_key = generate_keypair("host")
    address = loopback_address()
    server = start_simulated_guest(address, host_key.private_openssh, operator_key.public_openssh, tmp_path / "g", port=0)
    yield server, GuestTarget("ssvm-a", address, host_key.public_openssh, port=server.port)
    server.stop()


async def test_actions_run_in_the_simulated_guest(guest, operator_key):
    server, target = guest
    channel = SSHGuestChannel(operator_key.private_openssh, FAST)
    result = await channel.run_action(target, "setup-store", {"url": "nfs://nfs.example.org/export"})
    assert result.ok and result.simulated and result.data["parentDir"].startswith(str(server.state_dir))
    result = await channel.run_action(target, "firewall", {"peers": ["192.0.2.7"]})
    assert result.ok and result.data["rules"] == ["-A SSVM-COPY -s 192.0.2.7/32 -j ACCEPT", "-A SSVM-COPY -j DROP"]
    result = await channel.run_action(target, "check", {"copyServer": False})
    assert result.ok and result.data["healthy"]


async def test_actions_in_a_burst_share_one_connection_and_a_restarted_guest_gets_a_new_one(operator_key, tmp_path):
    host_key, address = generate_keypair("host"), loopback_address()
    server = start_simulated_guest(address, host_key.private_openssh, operator_key.public_openssh, tmp_path / "g", port=0)
    target = GuestTarget("ssvm-a", address, host_key.public_openssh, port=server.port)
    channel = SSHGuestChannel(operator_key.private_openssh, FAST)
    try:
        assert (await channel.run_action(target, "firewall", {"peers": []})).ok
        assert (await channel.run_action(target, "check", {"copyServer": False})).ok
        assert server.connections == 1
    finally:
        server.stop()   # as a reboot: the kept connection is gone, the next action connects again
    again = start_simulated_guest(address, host_key.private_openssh, operator_key.public_openssh, tmp_path / "g2", port=server.port)
    try:
        assert (await channel.run_action(target, "check", {"copyServer": False})).ok
        assert again.connections == 1
    finally:
        again.stop()
        channel.close_idle()


async def test_agent_failures_come_back_as_results_and_can_raise(guest, operator_key):
    _, target = guest
    channel = SSHGuestChannel(operator_key.private_openssh, FAST)
    result = await channel.run_action(target, "firewall", {"peers": "nope"})
    assert not result.ok and result.exit_code == 2 and result.reason == "InvalidPayload"
    with pytest.raises(errors.ActionFailed) as exc:
        result.raise_for_failure(target.name)
    assert exc.value.reason == "ActionFailed" and exc.value.agent_reason == "InvalidPayload"


async def test_wrong_host_key_is_a_mismatch(guest, operator_key):
    _, target = guest
    other = generate_keypair()
    channel = SSHGuestChannel(operator_key.private_openssh, FAST)
    bad = GuestTarget(target.name, target.address, other.public_openssh, port=target.port)
    with pytest.raises(errors.HostKeyMismatch) as exc:
        await channel.run_action(bad, "info", {})
    assert exc.value.reason == "HostKeyMismatch" and other.fingerprint in str(exc.value)


async def test_host_key_of_another_type_is_a_mismatch_too(guest, operator_key):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    _, target = guest
    ecdsa = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    bad = GuestTarget(target.name, target.address, ecdsa, port=target.port)
    with pytest.raises(errors.HostKeyMismatch):
        await SSHGuestChannel(operator_key.private_openssh, FAST).run_action(bad, "info", {})


async def test_unknown_operator_key_fails_authentication(guest):
    _, target = guest
    with pytest.raises(errors.AuthenticationFailed) as exc:
        await SSHGuestChannel(generate_keypair().private_openssh, FAST).run_action(target, "info", {})
    assert exc.value.reason == "AuthenticationFailed"


async def test_closed_port_is_connection_refused(operator_key):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    target = GuestTarget("ssvm-x", "127.0.0.1", generate_keypair().public_openssh, port=port)
    with pytest.raises(errors.ConnectionRefused):
        await SSHGuestChannel(operator_key.private_openssh, FAST).run_action(target, "info", {})


async def test_a_server_that_never_speaks_times_out(operator_key):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    held = []
    threading.Thread(target=lambda: held.append(sock.accept()), daemon=True).start()
    target = GuestTarget("ssvm-x", "127.0.0.1", generate_keypair().public_openssh, port=sock.getsockname()[1])
    try:
        with pytest.raises(errors.Timeout) as exc:
            await SSHGuestChannel(operator_key.private_openssh, Timeouts(connect=1, banner=1, auth=1, deadline=5)).run_action(
                target, "info", {})
        assert exc.value.reason == "Timeout"
    finally:
        for conn, _ in held:
            conn.close()
        sock.close()


async def test_actions_to_several_guests_run_concurrently(tmp_path, operator_key):
    guests = []
    try:
        for i in range(3):
            host = generate_keypair()
            address = loopback_address()
            server = start_simulated_guest(address, host.private_openssh, operator_key.public_openssh, tmp_path / f"g{i}", port=0)
            guests.append((server, GuestTarget(f"ssvm-{i}", address, host.public_openssh, port=server.port)))
        channel = SSHGuestChannel(operator_key.private_openssh, FAST)
        results = await asyncio.gather(*(channel.run_action(t, "firewall", {"peers": ["192.0.2.1"]}) for _, t in guests))
        assert all(r.ok for r in results)
    finally:
        for server, _ in guests:
            server.stop()


async def test_key_rotation_adds_verifies_and_drops_the_old_key(guest, operator_key):
    _, target = guest
    old = SSHGuestChannel(operator_key.private_openssh, FAST)
    new_pair = generate_keypair("operator-2")
    new = await rotate_operator_key(old, target, new_pair.private_openssh)
    assert new.key_fingerprint == new_pair.fingerprint
    assert (await new.run_action(target, "info", {})).ok
    with pytest.raises(errors.AuthenticationFailed):
        await old.run_action(target, "info", {})


async def test_secrets_never_reach_logs_results_or_errors(guest, operator_key, caplog, capsys):
    _, target = guest
    channel = SSHGuestChannel(operator_key.private_openssh, FAST)
    texts = []
    with caplog.at_level(logging.DEBUG):
        ok = await channel.run_action(target, "vm-setup", {"copyPassword": PASSWORD})
        texts.append(repr(ok))
        bad = await channel.run_action(target, "vm-setup", {"copyPassword": PASSWORD, "allowedInternalSites": ["0.0.0.0/0"]})
        texts.append(repr(bad))
        try:
            bad.raise_for_failure(target.name)
        except errors.GuestError as exc:
            texts.append(str(exc))
        try:
            await channel.run_action(GuestTarget("x", target.address, generate_keypair().public_openssh, port=target.port),
                                     "vm-setup", {"copyPassword": PASSWORD})
        except errors.GuestError as exc:
            texts.append(str(exc))
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err, repr(channel)]
    for text in texts:
        assert PASSWORD not in text
        assert operator_key.private_openssh.splitlines()[1] not in text


async def test_fake_channel_runs_the_agent_and_scripts_failures():
    fake = FakeGuestChannel()
    target = GuestTarget("ssvm-f", "127.0.0.1", "ssh-ed25519 AAAA")
    result = await fake.run_action(target, "vm-setup", {"copyPassword": PASSWORD})
    assert result.ok and result.simulated and fake.pushes("vm-setup") == 1
    assert fake.calls[0].payload == {"copyPassword": REDACTED}
    fake.fail_next("ssvm-f", errors.HostKeyMismatch("scripted", "ssvm-f"))
    with pytest.raises(errors.HostKeyMismatch):
        await fake.run_action(target, "info", {})
    assert (await fake.run_action(target, "info", {})).ok
    fake.set_down("ssvm-f", errors.Timeout("down"))
    with pytest.raises(errors.Timeout):
        await fake.run_action(target, "info", {})
    fake.close()


async def test_simulated_guest_with_copy_server_is_healthy_and_serves_peers(tmp_path, operator_key):
    import base64
    import urllib.request
    host = generate_keypair()
    address = loopback_address()
    server = start_simulated_guest(address, host.private_openssh, operator_key.public_openssh, tmp_path / "g",
                                   port=0, copy_port=0)
    target = GuestTarget("ssvm-c", address, host.public_openssh, port=server.port)
    try:
        channel = SSHGuestChannel(operator_key.private_openssh, FAST)
        assert (await channel.run_action(target, "firewall", {"peers": ["127.0.0.1"]})).ok
        assert (await channel.run_action(target, "vm-setup", {"copyPassword": PASSWORD})).ok
        store = await channel.run_action(target, "setup-store", {"url": "nfs://nfs.example.org/export"})
        (server.state_dir / "mnt/SecStorage" / store.data["storeId"] / "template/t.txt").write_text("tmpl")
        health = await channel.run_action(target, "check", {"dnsNames": ["localhost"]})
        assert health.ok and health.data["healthy"] and health.data["activeSessions"] == 0, health.data
        status = json.loads((server.state_dir / "var/lib/ssvm-agent/copy-server.json").read_text())
        req = urllib.request.Request(f"http://{address}:{status['port']}/{store.data['storeId']}/template/t.txt")
        req.add_header("Authorization", "Basic " + base64.b64encode(f"cloud:{PASSWORD}".encode()).decode())
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.read() == b"tmpl"
    finally:
        server.stop()


async def test_a_silent_command_hits_the_command_timeout(guest, operator_key, monkeypatch):
    server, target = guest
    release = threading.Event()

    def stuck(action, stdin):
        release.wait(10)
        return 0, {"ok": True}
    monkeypatch.setattr(server, "_run_agent", stuck)
    channel = SSHGuestChannel(operator_key.private_openssh, Timeouts(connect=2, banner=2, auth=2, command=1, deadline=4))
    try:
        with pytest.raises(errors.Timeout):
            await channel.run_action(target, "info", {})
    finally:
        release.set()


def test_os_errors_are_classified():
    import errno
    from ssvm_operator.ssh.channel import _classify_os_error
    assert isinstance(_classify_os_error(OSError(errno.EHOSTUNREACH, "No route to host"), "x"), errors.Unreachable)
    assert isinstance(_classify_os_error(OSError(errno.ENETUNREACH, "Network is unreachable"), "x"), errors.Unreachable)
    assert isinstance(_classify_os_error(ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "x"), errors.ConnectionRefused)
    assert isinstance(_classify_os_error(socket.timeout("timed out"), "x"), errors.Timeout)


def test_a_cancelled_action_frees_its_thread_at_once(guest, operator_key):
    """An operator stopping (its daemons cancelled) must not wait for a guest that takes long to answer:
    here the agent waits 60 s for its lock, far past the 10 s the stop is given."""
    import fcntl

    server, target = guest
    channel = SSHGuestChannel(operator_key.private_openssh, Timeouts(connect=2, banner=2, auth=3, command=120, deadline=150))
    assert asyncio.run(channel.run_action(target, "info", {})).ok   # the agent's files exist now
    (lock,) = server.state_dir.rglob("agent.lock")

    async def cancelled_mid_action() -> None:
        task = asyncio.create_task(channel.run_action(target, "info", {}))
        await asyncio.sleep(1.5)   # connected; the agent is waiting for the lock
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        # asyncio.run waits for the executor's threads at its end, as the operator's shutdown does
        runner = threading.Thread(target=asyncio.run, args=(cancelled_mid_action(),), daemon=True)
        runner.start()
        runner.join(10)
        assert not runner.is_alive(), "the SSH thread kept the event loop from closing"
