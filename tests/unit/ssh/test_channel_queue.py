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


def test_a_guest_with_a_connection_kept_open_goes_first_and_a_cancelled_waiter_takes_no_slot():
    async def scenario():
        slots, order = ch.SessionSlots(1), []

        async def session(name, warm, hold):
            async with slots.slot(warm):
                order.append(name)
                await hold.wait()

        first_hold, rest = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(session("first", False, first_hold))
        await asyncio.sleep(0)
        cold = asyncio.create_task(session("cold", False, rest))
        gone = asyncio.create_task(session("gone", True, rest))
        warm = asyncio.create_task(session("warm", True, rest))
        await asyncio.sleep(0)
        gone.cancel()            # gave up while waiting: its turn passes to the next
        await asyncio.sleep(0)
        first_hold.set()
        rest.set()
        await asyncio.gather(first, cold, warm)
        return order, slots.free

    order, free = asyncio.run(scenario())
    assert order == ["first", "warm", "cold"], "the warm guest's next action reuses its handshake before a cold one starts"
    assert free == 1, "every slot came back"
