"""The dev cluster's server: kmock's `KubernetesEmulator`, extended with the `Api` of this package,
served on 127.0.0.1 with aiohttp; `DevCluster` runs it in a background thread for tests and demos.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import tempfile
import threading
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import rendering

from ssvm_devcluster import simulators as sims
from ssvm_devcluster.api import Api
from ssvm_devcluster.faults import FaultPlan
from ssvm_devcluster.store import HISTORY_LIMIT

log = logging.getLogger(__name__)

_KEEP_KMOCK_REQUESTS = 1000  # kmock keeps every parsed request; the Api has its own bounded log


@attrs.define(kw_only=True)
class DevClusterEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with a faithful API behind it.

    Reactions added with kmock's DSL after construction (e.g. `emulator['patch'] << 500`) still
    take precedence, which gives tests a way to inject faults; everything else goes to `Api`.
    """

    api: Api = attrs.field(factory=Api)
    _builtin_payloads: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._builtin_payloads = len(self._payloads)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        if len(self._payloads) > self._builtin_payloads:
            response = await self._user_reaction(raw_request)
            if response is not None:
                return response
        return await self.api.handle(raw_request, body)

    async def _user_reaction(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        """Serve a reaction added with kmock's DSL, if one matches (kmock's own request parsing)."""
        try:
            request = await rendering.Request._parse(raw_request, id=len(self._requests))
        except ValueError:
            return None  # kmock cannot parse some paths (e.g. /api/v1/namespaces); no reaction then
        self._requests.append(request)
        if len(self._requests) > 2 * _KEEP_KMOCK_REQUESTS:
            del self._requests[:-_KEEP_KMOCK_REQUESTS]
        for payload in self._payloads[self._builtin_payloads:]:
            if request in payload._source and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except rendering.ReactionMismatchError:
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        return None


def kubeconfig_text(url: str, namespace: str = "default") -> str:
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "ssvm-devcluster", "cluster": {"server": url}}],
        "users": [{"name": "ssvm-devcluster", "user": {}}],
        "contexts": [{"name": "ssvm-devcluster",
                      "context": {"cluster": "ssvm-devcluster", "user": "ssvm-devcluster", "namespace": namespace}}],
        "current-context": "ssvm-devcluster",
    }
    return json.dumps(config, indent=2) + "\n"


def write_kubeconfig(path: str | os.PathLike[str], url: str) -> pathlib.Path:
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(kubeconfig_text(url))
    tmp.chmod(0o600)
    tmp.replace(target)  # atomic: a reader never sees a half-written kubeconfig
    return target


async def serve(*, host: str = "127.0.0.1", port: int = 0, kubeconfig: str | os.PathLike[str] | None = None,
                simulators: list[sims.Simulator] | None = None,
                ready: Callable[["Running"], Awaitable[None] | None] | None = None,
                stop: asyncio.Event | None = None, history_limit: int = HISTORY_LIMIT, faults: FaultPlan | None = None) -> None:
    """Serve until `stop` is set; call `ready(running)` once the port is open and the kubeconfig written."""
    stop = stop or asyncio.Event()
    emulator = DevClusterEmulator(api=Api(history_limit, faults))
    async with emulator:
        server = aiohttp.web.Server(emulator, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=2.0)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        real_port = sock.getsockname()[1]
        url = f"http://{host}:{real_port}"
        path = pathlib.Path(kubeconfig) if kubeconfig else pathlib.Path(
            tempfile.mkdtemp(prefix="ssvm-devcluster-")) / "kubeconfig"
        write_kubeconfig(path, url)
        running = Running(url=url, port=real_port, kubeconfig_path=path, emulator=emulator)
        gc_task = asyncio.create_task(emulator.api.gc.run(stop), name="devcluster-gc")
        sim_stop = asyncio.Event()
        sim_task = asyncio.create_task(sims.run_all(simulators or [], sims.Endpoint(url), sim_stop), name="simulators")
        try:
            if ready is not None:
                result = ready(running)
                if asyncio.iscoroutine(result):
                    await result
            await stop.wait()
        finally:
            sim_stop.set()
            await sim_task
            emulator.api.shutdown()
            gc_task.cancel()
            await asyncio.gather(gc_task, return_exceptions=True)
            await runner.cleanup()


@attrs.frozen
class Running:
    url: str
    port: int
    kubeconfig_path: pathlib.Path
    emulator: DevClusterEmulator


class DevCluster:
    """A dev cluster in a background thread: `with DevCluster() as cluster: ... cluster.kubeconfig_path`."""

    def __init__(self, *, port: int = 0, kubeconfig: str | os.PathLike[str] | None = None,
                 simulators: list[sims.Simulator] | None = None, host: str = "127.0.0.1",
                 history_limit: int = HISTORY_LIMIT, faults: FaultPlan | None = None) -> None:
        """`simulators=None` runs the registered ones (as the CLI does); pass [] for none. `faults`: injected
        API faults (default: from $SSVM_DEVCLUSTER_FAULTS, none when unset)."""
        self._host, self._port, self._kubeconfig, self._simulators = host, port, kubeconfig, simulators
        self._history_limit, self.faults = history_limit, faults if faults is not None else FaultPlan.from_env()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._running: Running | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> "DevCluster":
        self._thread = threading.Thread(target=self._main, name="devcluster", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the dev cluster did not start in time")
        if self._error is not None:
            raise RuntimeError("the dev cluster failed to start") from self._error
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop = asyncio.Event()

        def on_ready(running: Running) -> None:
            self._running = running
            self._ready.set()

        try:
            loop.run_until_complete(serve(host=self._host, port=self._port, kubeconfig=self._kubeconfig,
                                          simulators=sims.default_simulators() if self._simulators is None else self._simulators,
                                          ready=on_ready, stop=self._stop, history_limit=self._history_limit,
                                          faults=self.faults))
        except BaseException as e:  # noqa: BLE001 - surfaced to the starting thread
            self._error = e
            log.exception("dev cluster crashed")
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)

    def __enter__(self) -> "DevCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _r(self) -> Running:
        if self._running is None:
            raise RuntimeError("the dev cluster is not running")
        return self._running

    @property
    def url(self) -> str:
        return self._r.url

    @property
    def port(self) -> int:
        return self._r.port

    @property
    def kubeconfig_path(self) -> pathlib.Path:
        return self._r.kubeconfig_path

    @property
    def emulator(self) -> DevClusterEmulator:
        """The kmock emulator (for fault injection with kmock's DSL); prefer the HTTP API otherwise."""
        return self._r.emulator

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The request log (the same as `GET /_devcluster/requests`)."""
        with urllib.request.urlopen(f"{self.url}/_devcluster/requests?since={since}", timeout=10) as resp:
            return json.load(resp)["items"]

