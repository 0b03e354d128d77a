"""Waiting for a free SSH thread is not the guest's time: a session's deadline starts when it runs."""
from __future__ import annotations

import asyncio
import concurrent.futures
import time

from ssvm_operator.ssh import channel as ch
from ssvm_operator.ssh.channel import ActionResult, GuestTarget, SSHGuestChannel, Timeouts
from ssvm_operator.ssh.keys import generate_keypair


def test_sessions_queued_behind_a_busy_pool_are_not_timed_out(monkeypatch):
    monkeypatch.setattr(ch, "SSH_WORKERS", 1)
    monkeypatch.setattr(ch, "SSH_THREADS", concurrent.futures.ThreadPoolExecutor(max_workers=1))

    def slow_guest(self, target, action, payload, clients, abandoned=None):
        time.sleep(0.6)   # each session takes 0.6 s of a 1 s deadline; four in a row take 2.4 s
        return ActionResult(action, 0, {"ok": True})

    monkeypatch.setattr(SSHGuestChannel, "_run_blocking", slow_guest)
    channel = SSHGuestChannel(generate_keypair("op").private_openssh, Timeouts(deadline=1.0))
    target = GuestTarget("ns/ssvm", "127.0.0.1", generate_keypair("host").public_openssh)

    async def four_at_once():
        return await asyncio.gather(*(channel.run_action(target, "info", {}) for _ in range(4)))

    assert [r.ok for r in asyncio.run(four_at_once())] == [True] * 4
