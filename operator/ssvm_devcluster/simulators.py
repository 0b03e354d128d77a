"""Simulators: stand-ins for other controllers (KubeVirt, SSVM guests) that act only through the
dev cluster's HTTP API, as real controllers do.

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
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, runtime_checkable

import aiohttp

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


class ApiClient:
    """A small JSON client of the dev cluster's API, for simulators."""

    def __init__(self, url: str, session: aiohttp.ClientSession, user_agent: str) -> None:
        self.url = url.rstrip("/")
        self.session = session
        self.headers = {"User-Agent": user_agent}

    async def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                      params: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        headers = {**self.headers, "Content-Type": content_type}
        async with self.session.request(method, self.url + path, data=data, headers=headers, params=params) as resp:
            return resp.status, await resp.json(content_type=None)

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
            async with self.session.get(self.url + path, params=query, headers=self.headers) as resp:
                async for line in resp.content:
                    if stop.is_set():
                        return
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        rv = ""
                        break
                    rv = event["object"]["metadata"].get("resourceVersion", rv)
                    yield event


async def run_one(sim: Simulator, url: str, stop: asyncio.Event) -> None:
    """Run a simulator with its own HTTP session; restart it after a crash, until `stop`."""
    async with aiohttp.ClientSession() as session:
        api = ApiClient(url, session, user_agent=f"ssvm-devcluster-simulator/{sim.name}")
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
