"""Simulated SSVM guests: for each VirtualMachineInstance the KubeVirt simulator runs, a guest that
reads its VM's cloud-init Secret through the API (as a real guest reads its user data) for the host
key and the authorised key, and serves SSH on the VMI's control address, port 3922, running the real
agent in simulated mode with a state dir of its own (mounts and firewall rules recorded, not
applied). A new instance (reboot, recreate) is a new guest; a deleted one stops.

The annotation `sim.ssvm.io/guest-host-key: impostor` on a VirtualMachine makes its next guest
present a host key of its own instead of the one in its user data (the pin must refuse it);
`sim.ssvm.io/guest: silent` makes its next guest never answer SSH (a VM that runs but never boots).

`python -m ssvm_devcluster.sim_guests --kubeconfig PATH [--shard I/N]` runs the guests in a process of
their own against any API server (the dev cluster started with `--no-guests`, or the real control plane):
hundreds of SSH servers then do not share the API server's interpreter lock.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ssvm_operator.constants import SSH_PORT
from ssvm_devcluster.simulators import ApiClient, register

log = logging.getLogger(__name__)

VMIS = "/apis/kubevirt.io/v1/virtualmachineinstances"
HOST_KEY_ANNOTATION = "sim.ssvm.io/guest-host-key"
GUEST_ANNOTATION = "sim.ssvm.io/guest"
AUTHORIZED_KEYS_PATH = "/root/.ssh/authorized_keys"
CONTROL_INTERFACE = "control"


@dataclass
class GuestSimConfig:
    state_root: str | None = None       # default: a temporary dir removed when the simulator stops
    port: int = SSH_PORT
    copy_port: int | None = -1          # -1: 80 when root (as in a VM), else any free port; None: no copy server
    retry_delay: float = 2.0
    shard: tuple[int, int] = (0, 1)     # (i, n): only the VMs whose name hashes to i modulo n


def in_shard(namespace: str, name: str, shard: tuple[int, int]) -> bool:
    index, count = shard
    return count <= 1 or zlib.crc32(f"{namespace}/{name}".encode()) % count == index


def parse_user_data(text: str) -> tuple[str, str]:
    """(host private key, operator's authorised key line) from cloud-config user data."""
    body = text.split("\n", 1)[1] if text.startswith("#cloud-config") else text
    doc = yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}   # libyaml: the agent's base64 is long
    private = next((v for k, v in (doc.get("ssh_keys") or {}).items() if k.endswith("_private")), None)
    authorized = next((f.get("content", "") for f in doc.get("write_files") or [] if f.get("path") == AUTHORIZED_KEYS_PATH), "")
    if not private or not authorized.strip():
        raise ValueError("the user data holds no host private key or no authorised key")
    return private, authorized.strip()


def _secret_text(secret: dict[str, Any], key: str) -> str | None:
    data = secret.get("data") or {}
    if data.get(key):
        return base64.b64decode(data[key]).decode()
    return (secret.get("stringData") or {}).get(key)


def control_address(vmi: dict[str, Any]) -> str | None:
    for iface in (vmi.get("status") or {}).get("interfaces") or []:
        if iface.get("name") == CONTROL_INTERFACE and iface.get("ipAddress"):
            return iface["ipAddress"].split("/", 1)[0]
    return None


class GuestSimulator:
    name = "guests"

    def __init__(self, config: GuestSimConfig | None = None) -> None:
        self.config = config or GuestSimConfig()
        self.guests: dict[tuple[str, str], tuple[str, Any]] = {}   # (ns, vm) -> (VMI uid, SimulatedGuest)
        self._root: Path | None = None
        self._own_root = False
        self._connections_before = 0   # SSH connections of the guests already stopped

    def connections(self) -> int:
        """SSH connections the guests accepted (each a handshake), stopped guests included."""
        return self._connections_before + sum(g.connections for _, g in self.guests.values() if g is not None)

    @property
    def root(self) -> Path:
        if self._root is None:
            if self.config.state_root:
                self._root = Path(self.config.state_root)
            else:
                self._root, self._own_root = Path(tempfile.mkdtemp(prefix="ssvm-sim-guests-")), True
        return self._root

    def _copy_port(self) -> int | None:
        if self.config.copy_port == -1:
            return 80 if os.geteuid() == 0 else 0
        return self.config.copy_port

    async def run(self, api: ApiClient, stop: asyncio.Event) -> None:
        # The watch only looks at `stop` when an event comes: race it against the stop itself.
        watcher = asyncio.create_task(self._watch(api, stop), name="guest-sim-watch")
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([watcher, stopper], return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and watcher.exception() is not None:
                raise watcher.exception()  # type: ignore[misc]
        finally:
            for task in (watcher, stopper):
                task.cancel()
            await asyncio.gather(watcher, stopper, return_exceptions=True)
            await self.stop_all()

    async def _watch(self, api: ApiClient, stop: asyncio.Event) -> None:
        while not stop.is_set():   # the KubeVirt simulator registers the VMI kind when it starts: wait for it
            code, _ = await api.get(VMIS)
            if code == 200:
                break
            await asyncio.sleep(0.2)
        async for event in api.watch(VMIS, stop=stop):
            await self.handle(api, event.get("type", ""), event.get("object") or {}, stop)

    async def handle(self, api: ApiClient, type_: str, vmi: dict[str, Any], stop: asyncio.Event) -> None:
        meta = vmi.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if not in_shard(*key, self.config.shard):
            return
        running = (vmi.get("status") or {}).get("phase") == "Running" and not meta.get("deletionTimestamp")
        current = self.guests.get(key)
        if type_ == "DELETED" or not running:
            if current is not None and (type_ == "DELETED" or current[0] == meta.get("uid")):
                await self._stop(key)
            return
        if current is not None and current[0] == meta.get("uid"):
            return
        if current is not None:
            await self._stop(key)
        address = control_address(vmi)
        if address is None:
            return
        try:
            await self._start(api, key, meta.get("uid", ""), address)
        except Exception as e:  # noqa: BLE001 - a guest that cannot start is retried, like a slow boot
            log.warning("simulated guest %s/%s on %s: %s; retrying", key[0], key[1], address, e)
            asyncio.get_running_loop().call_later(self.config.retry_delay, lambda: asyncio.ensure_future(
                self._retry(api, key, stop)))

    async def _retry(self, api: ApiClient, key: tuple[str, str], stop: asyncio.Event) -> None:
        if stop.is_set():
            return
        code, vmi = await api.get(f"/apis/kubevirt.io/v1/namespaces/{key[0]}/virtualmachineinstances/{key[1]}")
        if code == 200:
            await self.handle(api, "MODIFIED", vmi, stop)

    async def _start(self, api: ApiClient, key: tuple[str, str], uid: str, address: str) -> None:
        from ssvm_operator.ssh.keys import generate_keypair
        from ssvm_devcluster.simserver import start_simulated_guest

        ns, name = key
        code, vm = await api.get(f"/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines/{name}")
        if code != 200:
            raise RuntimeError(f"VirtualMachine not readable: {code}")
        volumes = (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []
        ref = next(((v.get("cloudInitNoCloud") or {}).get("secretRef") for v in volumes
                    if (v.get("cloudInitNoCloud") or {}).get("secretRef")), None)
        if not ref:
            raise RuntimeError("the VM has no cloud-init NoCloud secretRef")
        code, secret = await api.get(f"/api/v1/namespaces/{ns}/secrets/{ref['name']}")
        if code != 200:
            raise RuntimeError(f"cloud-init Secret {ref['name']} not readable: {code}")
        private, authorized = parse_user_data(_secret_text(secret, "userdata") or "")
        annotations = (vm.get("metadata") or {}).get("annotations") or {}
        if annotations.get(GUEST_ANNOTATION) == "silent":
            self.guests[key] = (uid, None)  # this instance never answers; a new one is looked at afresh
            log.info("simulated guest %s/%s on %s: silent (annotation)", ns, name, address)
            return
        if annotations.get(HOST_KEY_ANNOTATION) == "impostor":
            private = generate_keypair("impostor").private_openssh
        state = self.root / ns / name / (uid or "instance")
        guest = await asyncio.to_thread(start_simulated_guest, address, private, authorized, state,
                                        port=self.config.port, copy_port=self._copy_port(), exports_root=self.root / "_exports")
        self.guests[key] = (uid, guest)
        log.info("simulated guest %s/%s: SSH on %s:%d, state in %s", ns, name, address, guest.port, state)

    async def _stop(self, key: tuple[str, str]) -> None:
        found = self.guests.pop(key, None)
        if found is not None and found[1] is not None:
            self._connections_before += found[1].connections
            await asyncio.to_thread(found[1].stop)
            log.info("simulated guest %s/%s stopped", *key)

    async def stop_all(self) -> None:
        # all at once: stopped one by one, hundreds of guests outlast the simulators' grace and leak their sockets
        await asyncio.gather(*(self._stop(key) for key in list(self.guests)))
        if self._own_root and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


@register("guests")
def _factory() -> GuestSimulator:
    return GuestSimulator()


def count_sessions() -> Counter:
    """SSH sessions the simulated guests of this process answer, by agent action."""
    from ssvm_operator.agent import cli as agent_cli

    sessions: Counter = Counter()
    for action, handler in list(agent_cli.ACTIONS.items()):
        def counting(ctx, payload, handler=handler, action=action):
            sessions[action] += 1
            return handler(ctx, payload)
        agent_cli.ACTIONS[action] = counting
    return sessions


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    shard = (int(index), int(count or 1))
    if not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(f"--shard {text}: want I/N with 0 <= I < N")
    return shard


def main(argv: list[str] | None = None) -> int:
    from ssvm_devcluster.simulators import Endpoint, run_all

    parser = argparse.ArgumentParser(prog="python -m ssvm_devcluster.sim_guests", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="the API server to watch (an admin's kubeconfig)")
    parser.add_argument("--state-root", help="where the guests keep their state (default: a temporary dir)")
    parser.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N", help="serve only the VMs hashing to I of N")
    parser.add_argument("--copy-port", type=int, default=-1, help="copy server port (default: 80 as root, else any)")
    parser.add_argument("--sessions-file", help="keep the count of agent actions run and SSH connections in this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)   # a client that gave up mid-handshake is no error here
    sessions = count_sessions()
    sim = GuestSimulator(GuestSimConfig(state_root=args.state_root, copy_port=args.copy_port, shard=args.shard))

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = asyncio.create_task(run_all([sim], Endpoint.from_kubeconfig(args.kubeconfig), stop))
        stopper = asyncio.create_task(stop.wait())
        while not stop.is_set() and not runner.done():
            if args.sessions_file:
                _write_counts(args.sessions_file, sessions, sim.connections())
            await asyncio.wait([runner, stopper], timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await asyncio.gather(runner, stopper)
        if args.sessions_file:
            _write_counts(args.sessions_file, sessions, sim.connections())

    asyncio.run(serve())
    return 0


def _write_counts(path: str, sessions: Counter, connections: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"actions": dict(sessions), "connections": connections}, fh)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
