"""Simulators: stand-ins for other controllers (KubeVirt, SSVM guests) that act only through the
dev cluster's HTTP API, as real controllers do.

They reach any API server through an `Endpoint` (URL, CA and bearer token from a kubeconfig): the
dev cluster runs them in its own loop; `SimulatorsThread` runs them against the real control plane.

Adding one takes two steps:

    # operator/ssvm_devcluster/sim_example.py
    from ssvm_devcluster.simulators import ApiClient, register

    @register("example")
    class ExampleSimulator:
        name = "example"
        async def run(self, api: ApiClient, stop: asyncio.Event) -> None:
            async for event in api.watch("/apis/ssvm.io/v1alpha1/zones", stop=stop):
                ...

and list the module in `BUILTIN_MODULES` below, so `ssvm-operator devcluster` runs it by default.
"""
from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import pathlib
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import aiohttp
import yaml

log = logging.getLogger(__name__)

# Modules whose import registers simulators; the dev cluster runs all of them unless told not to.
BUILTIN_MODULES: tuple[str, ...] = ("ssvm_devcluster.sim_kubevirt", "ssvm_devcluster.sim_guests")

_REGISTRY: dict[str, Callable[[], "Simulator"]] = {}


@runtime_checkable
class Simulator(Protocol):
    name: str

    async def run(self, api: "ApiClient", stop: asyncio.Event) -> None:
        """Act until `stop` is set; return promptly after it is."""


def register(name: str) -> Callable[[Callable[[], Simulator]], Callable[[], Simulator]]:
    def decorator(factory: Callable[[], Simulator]) -> Callable[[], Simulator]:
        _REGISTRY[name] = factory
        return factory
    return decorator


def available() -> dict[str, Callable[[], Simulator]]:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


def default_simulators() -> list[Simulator]:
    return [factory() for factory in available().values()]


@dataclass(frozen=True)
class Endpoint:
    """Where an API server is and how to prove who we are to it."""

    url: str
    token: str | None = None
    ca_file: str | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str]) -> "Endpoint":
        config = yaml.safe_load(pathlib.Path(path).read_text())
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next((u.get("user") or {} for u in config.get("users") or [] if u["name"] == context.get("user")), {})
        return cls(cluster["server"], user.get("token"), cluster.get("certificate-authority"))

    def session(self) -> aiohttp.ClientSession:
        context = ssl.create_default_context(cafile=self.ca_file) if self.url.startswith("https:") else None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context) if context else None, headers=headers)


class ApiClient:
    """A small JSON client of a Kubernetes API, for simulators."""

    def __init__(self, url: str, session: aiohttp.ClientSession, user_agent: str) -> None:
        self.url = url.rstrip("/")
        self.session = session
        self.headers = {"User-Agent": user_agent}

    async def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                      params: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        headers = {**self.headers, "Content-Type": content_type}
        async with self.session.request(method, self.url + path, data=data, headers=headers, params=params) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:   # kube-apiserver answers a kind it does not serve yet with plain text
                return resp.status, {"message": text[:500]}

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await self.request("POST", path, body)

    async def patch(self, path: str, body: Any, content_type: str = "application/merge-patch+json") -> tuple[int, Any]:
        return await self.request("PATCH", path, body, content_type=content_type)

    async def delete(self, path: str) -> tuple[int, Any]:
        return await self.request("DELETE", path)

    async def watch(self, path: str, *, stop: asyncio.Event, **params: str) -> AsyncIterator[dict[str, Any]]:
        """List-then-watch events of a collection path, resuming after disconnects, until `stop`."""
        rv = ""
        while not stop.is_set():
            query = {**params, "watch": "true", "timeoutSeconds": "30"}
            if rv:
                query["resourceVersion"] = rv
            try:
                async with self.session.get(self.url + path, params=query, headers=self.headers) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"watch {path}: {resp.status} {await resp.text()}")
                    async for line in resp.content:
                        if stop.is_set():
                            return
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            rv = ""
                            break
                        rv = event["object"]["metadata"].get("resourceVersion", rv)
                        yield event
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
                await asyncio.sleep(0.1)   # a stream cut mid-way resumes from the last version seen, as a reflector does


async def run_one(sim: Simulator, endpoint: Endpoint, stop: asyncio.Event) -> None:
    """Run a simulator with its own HTTP session; restart it after a crash, until `stop`."""
    async with endpoint.session() as session:
        api = ApiClient(endpoint.url, session, user_agent=f"ssvm-devcluster-simulator/{sim.name}")
        while not stop.is_set():
            try:
                await sim.run(api, stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a failing simulator is logged and restarted
                log.exception("simulator %s failed; restarting in 1s", sim.name)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass


async def run_all(simulators: list[Simulator], endpoint: Endpoint, stop: asyncio.Event, grace: float = 5.0) -> None:
    """Run every simulator until `stop`; give them `grace` seconds to finish, then cancel the rest."""
    tasks = [asyncio.create_task(run_one(sim, endpoint, stop), name=f"simulator-{sim.name}") for sim in simulators]
    await stop.wait()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


class SimulatorsThread:
    """`with SimulatorsThread(kubeconfig, [KubeVirtSimulator()]):` runs simulators against any API server
    (the real control plane, for one) in a thread of their own."""

    def __init__(self, kubeconfig: str | os.PathLike[str], simulators: list[Simulator]) -> None:
        self.endpoint = Endpoint.from_kubeconfig(kubeconfig)
        self.simulators = simulators
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="simulators", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self._started.set()
            await run_all(self.simulators, self.endpoint, self._stop)
        try:
            self._loop.run_until_complete(main())
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def __enter__(self) -> "SimulatorsThread":
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
