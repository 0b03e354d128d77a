"""The firewall mesh when N SSVMs come up at once: SSH pushes and time to converge, against
CloudStack's per-join fan-out (N(N+1)/2 firewall commands); then pushes per hour at steady state
(the goal is zero).

By default each SSVM is a simulated guest (`guest.simserver`: real SSH with its pinned host key on
its own loopback address 127.62.x.y, port 3922, running the real agent in a state dir); `--transport
fake` runs the agent in-process instead. The guest workers, the mesh's quiet period and the action
hashes are the operator's own code (guestops); the lifecycle's part (VM up, gate, Running) is
played by the in-memory cluster. Prints a JSON document, then a table.

  .venv/bin/python bench/guest_mesh_bench.py [--ssvms 50] [--transport ssh|fake] [--steady-seconds 10]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import pathlib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from ssvm_devcluster.simserver import start_simulated_guest  # noqa: E402
from ssvm_operator.controllers.guest import status as guest_status  # noqa: E402
from ssvm_operator.controllers.guest.mesh import Mesh  # noqa: E402
from ssvm_operator.controllers.guest.worker import GuestOps, GuestSettings  # noqa: E402
from ssvm_operator.controllers.keys.rotation import Logins  # noqa: E402
from ssvm_operator.controllers.keys.secrets import KeyStore  # noqa: E402
from ssvm_operator.controllers.ssvm.start_gate import Reach, SSHStartGate  # noqa: E402
from ssvm_operator.ssh.channel import SSHGuestChannel, Timeouts  # noqa: E402
from tests.support.fake_guest import FakeGuestChannel  # noqa: E402
from tests.support.memory_cluster import MemoryCluster  # noqa: E402
from tests.support.memory_secrets import MemorySecretsApi  # noqa: E402

NS, ZONE = "bench", "z1"
PUSHES = ("setup-store", "firewall", "vm-setup")


class Counting:
    """A channel wrapper counting every call by action."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, Counter()

    async def run_action(self, target: Any, action: str, payload: Mapping[str, Any]) -> Any:
        self.calls[action] += 1
        return await self.inner.run_action(target, action, payload)


def address(i: int) -> str:
    return f"127.62.{i // 250}.{i % 250 + 2}"


async def bench(n: int, transport: str, steady_seconds: float, quiet: float, heartbeat: float) -> dict[str, Any]:
    guest_status.HEALTH_HEARTBEAT_SECONDS = heartbeat   # the product's is 600 s; shorter shows the heartbeat in a short run
    cluster = MemoryCluster()
    cluster.add_zone(NS, ZONE, health={"intervalSeconds": 5, "failureThreshold": 3})
    cluster.add_store(NS, "store-1", ZONE)
    for i in range(n):
        cluster.add_ssvm(NS, f"ssvm-{i}", ZONE, address(i))
    secrets = MemorySecretsApi()
    keys = KeyStore(secrets)
    guests, tmp = [], tempfile.TemporaryDirectory(prefix="guest-mesh-bench-")
    fake = FakeGuestChannel(pathlib.Path(tmp.name) / "fake") if transport == "fake" else None
    channels: dict[Any, Counting] = {}

    def factory(key: Any, timeouts: Timeouts) -> Counting:
        inner = fake if fake is not None else SSHGuestChannel(key.private, timeouts)
        return channels.setdefault((key.fingerprint, timeouts), Counting(inner))

    mesh = Mesh(cluster.addresses, quiet=quiet, max_delay=30.0)
    mesh.observe()
    cluster.listeners.append(lambda ns, name: mesh.observe())
    logins, reach = Logins(factory), Reach()
    ops = GuestOps(cluster, keys, logins, mesh, reach, GuestSettings(check_copy_server=False))
    gate = SSHStartGate(keys, logins, reach)
    if transport == "ssh":
        op = await keys.operator_key(cluster.zones[(NS, ZONE)])
        for i in range(n):
            host = await keys.host_key(cluster.ssvms[(NS, f"ssvm-{i}")])
            guests.append(await asyncio.to_thread(start_simulated_guest, address(i), host.private, op.public,
                                                  pathlib.Path(tmp.name) / f"ssvm-{i}", 3922))
    stop = False
    workers = [asyncio.create_task(ops.run_worker(NS, f"ssvm-{i}", lambda: stop)) for i in range(n)]
    try:
        started = time.monotonic()
        gates = await asyncio.gather(*(cluster.bring_up(gate, NS, f"ssvm-{i}", instance=f"vmi-{i}") for i in range(n)))
        assert all(g.passed for g in gates), [g for g in gates if not g.passed][:3]

        def converged() -> bool:
            for body in cluster.ssvms.values():
                fw = ((body["status"].get("actions") or {}).get("firewall")) or {}
                if not fw.get("appliedHash") or fw["appliedHash"] != fw.get("desiredHash"):
                    return False
                if ops.mesh.peers(NS, body["metadata"]["name"]).__len__() != n - 1:
                    return False
            return True
        while not converged():
            if time.monotonic() - started > 600:
                raise RuntimeError("the mesh did not converge in 600 s")
            await asyncio.sleep(0.05)
        # Converged means applied with the full mesh: wait for the last pushes' hashes to be the final ones.
        burst_seconds = time.monotonic() - started
        burst = Counter()
        for ch in channels.values():
            burst.update(ch.calls)
        # Steady state: health checks every `intervalSeconds`, each pass recomputes every hash.
        for body in cluster.zones.values():
            body["spec"]["secondaryStorage"]["health"]["intervalSeconds"] = 1
        for w in ops.workers.values():
            w.next_check = 0.0
        ops.wake_all()
        writes_before = cluster.status_writes
        await asyncio.sleep(steady_seconds)
        steady_writes = cluster.status_writes - writes_before
        total = Counter()
        for ch in channels.values():
            total.update(ch.calls)
        steady = total - burst
    finally:
        stop = True
        ops.wake_all()
        await asyncio.gather(*workers, return_exceptions=True)
        for g in guests:
            await asyncio.to_thread(g.stop)
        tmp.cleanup()
    steady_pushes = sum(steady[a] for a in PUSHES)
    return {
        "ssvms": n, "transport": transport, "meshQuietSeconds": quiet,
        "burst": {"seconds": round(burst_seconds, 3), "firewallPushes": burst["firewall"],
                  "actionPushes": sum(burst[a] for a in PUSHES), "sshCalls": sum(burst.values()), "byAction": dict(burst)},
        "cloudstackFirewallCommands": n * (n + 1) // 2,
        "steady": {"seconds": steady_seconds, "checks": steady["check"], "actionPushes": steady_pushes,
                   "pushesPerHour": round(steady_pushes * 3600 / steady_seconds, 1), "byAction": dict(steady),
                   "healthHeartbeatSeconds": heartbeat, "statusWrites": steady_writes,
                   "statusWritesPerSSVMPerHour": round(steady_writes * 3600 / steady_seconds / n, 2)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ssvms", type=int, default=50)
    parser.add_argument("--transport", choices=("ssh", "fake"), default="ssh")
    parser.add_argument("--steady-seconds", type=float, default=10.0)
    parser.add_argument("--quiet", type=float, default=1.0, help="the mesh's quiet period (the operator's default: 1 s)")
    parser.add_argument("--heartbeat", type=float, default=600.0,
                        help="seconds between writes of an unchanged health result (the operator's: 600)")
    args = parser.parse_args()
    # The simulated guests' SSH servers log every connection the client closes first: noise for a benchmark.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    result = asyncio.run(bench(args.ssvms, args.transport, args.steady_seconds, args.quiet, args.heartbeat))
    print(json.dumps(result, indent=2))
    b, s = result["burst"], result["steady"]
    rows = [("SSVMs coming up at once", result["ssvms"]), ("transport", result["transport"]),
            ("firewall pushes (this operator)", b["firewallPushes"]),
            ("firewall commands (CloudStack fan-out N(N+1)/2)", result["cloudstackFirewallCommands"]),
            ("all action pushes (setup-store + firewall + vm-setup)", b["actionPushes"]),
            ("all SSH calls incl. gate and checks", b["sshCalls"]), ("time to a converged mesh (s)", b["seconds"]),
            (f"steady state: health checks in {s['seconds']:g} s", s["checks"]),
            ("steady state: action pushes per hour", s["pushesPerHour"]),
            (f"steady state: status writes per SSVM per hour (heartbeat {s['healthHeartbeatSeconds']:g} s)",
             s["statusWritesPerSSVMPerHour"])]
    width = max(len(r[0]) for r in rows)
    print()
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
