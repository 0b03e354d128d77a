"""Guest operations on memory stand-ins (unit tests of the guest and keys controllers): the in-memory cluster, the fake channel running the real agent, keys in memory."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tests.support.fake_guest import FakeGuestChannel
from ssvm_operator.controllers.guest.worker import GuestOps, GuestSettings
from tests.support.memory_cluster import MemoryCluster
from ssvm_operator.controllers.guest.mesh import Mesh
from ssvm_operator.controllers.keys.rotation import Logins
from ssvm_operator.controllers.ssvm.start_gate import Reach, SSHStartGate
from ssvm_operator.controllers.keys.secrets import KeyStore
from tests.support.memory_secrets import MemorySecretsApi

NS = "cloud"


@dataclass
class World:
    cluster: MemoryCluster
    fake: FakeGuestChannel
    secrets: MemorySecretsApi
    ops: GuestOps
    gate: SSHStartGate

    def restart(self) -> World:
        """A new operator process: nothing in memory but what the cluster holds."""
        return make_world(self.cluster, self.fake, self.secrets)

    async def step_all(self) -> None:
        for ns, name in list(self.cluster.ssvms):
            await self.ops.step(ns, name)

    def ssvm(self, name: str) -> dict[str, Any]:
        return self.cluster.ssvms[(NS, name)]


def make_world(cluster: MemoryCluster | None = None, fake: FakeGuestChannel | None = None,
               secrets: MemorySecretsApi | None = None, clock: Callable[[], float] = time.monotonic, **settings: Any) -> World:
    cluster = cluster or MemoryCluster()
    fake = fake or FakeGuestChannel()
    secrets = secrets or MemorySecretsApi()
    mesh = Mesh(cluster.addresses, quiet=settings.pop("quiet", 0.0), max_delay=settings.pop("max_delay", 0.0))
    mesh.observe()
    keys, logins, reach = KeyStore(secrets), Logins(lambda key, timeouts: fake.for_key(key)), Reach()
    ops = GuestOps(cluster, keys, logins, mesh, reach, GuestSettings(check_copy_server=False, **settings), clock=clock)
    cluster.listeners.append(lambda ns, name: mesh.observe())
    return World(cluster, fake, secrets, ops, SSHStartGate(keys, logins, reach, clock=clock))


@pytest.fixture()
def world():
    w = make_world()
    yield w
    w.fake.close()


@pytest.fixture(autouse=True)
def _debug_logs(caplog):
    caplog.set_level(logging.DEBUG)


def run(coro):
    return asyncio.run(coro)


class StopFlag:
    """kopf's DaemonStopped as a loop sees it: false until `set()`, and `wait()` resolves then."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()
