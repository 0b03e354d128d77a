"""One libvirt connection per URI, reused while alive, reopened when it drops; a host that cannot be
reached, or a call past its bound, is a reason, never a hang."""
from __future__ import annotations

import time

import pytest

from ssvm_operator.backends.base import BackendError
from ssvm_operator.backends.libvirt.connection import Connections


class Conn:
    def __init__(self, n: int) -> None:
        self.n, self.alive, self.closed = n, True, False

    def isAlive(self) -> int:   # noqa: N802 - libvirt's name
        return int(self.alive)

    def close(self) -> None:
        self.closed = True


class Opener:
    def __init__(self, fail: bool = False) -> None:
        self.opened: list[Conn] = []
        self.fail = fail

    def __call__(self, uri: str) -> Conn:
        if self.fail:
            raise OSError(f"connect to {uri}: no route?keyfile=/secret/path")
        self.opened.append(Conn(len(self.opened)))
        return self.opened[-1]


async def test_a_connection_is_reused_while_alive_and_reopened_when_it_drops():
    opener = Opener()
    conns = Connections(opener)
    assert await conns.call("qemu:///system", lambda c: c.n) == 0
    assert await conns.call("qemu:///system", lambda c: c.n) == 0
    assert await conns.call("qemu+ssh://h/system", lambda c: c.n) == 1   # one per URI
    opener.opened[0].alive = False
    assert await conns.call("qemu:///system", lambda c: c.n) == 2
    conns.drop("qemu:///system")
    assert opener.opened[2].closed and await conns.call("qemu:///system", lambda c: c.n) == 3


async def test_an_unreachable_host_is_a_reason_without_the_uri_query():
    with pytest.raises(BackendError) as e:
        await Connections(Opener(fail=True)).call("qemu+ssh://root@kvm1/system?keyfile=/secret/path", lambda c: c.n)
    assert e.value.reason == "HostUnreachable" and "kvm1" in e.value.message and "/secret/path" not in e.value.message


async def test_a_call_past_its_bound_times_out_and_drops_the_connection(monkeypatch):
    monkeypatch.setattr("ssvm_operator.backends.libvirt.connection.OPEN_TIMEOUT", 0.0)
    opener = Opener()
    conns = Connections(opener)
    with pytest.raises(BackendError) as e:
        await conns.call("qemu:///system", lambda c: time.sleep(0.5), timeout=0.05)
    assert e.value.reason == "LibvirtTimeout"
    assert opener.opened[0].closed   # the next call opens a new one
