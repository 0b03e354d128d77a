"""Steady state: after N zones (one store each) converge on the dev cluster or the real control plane,
with the simulated KubeVirt and simulated guests (real SSH, the real agent), the operator as its own
process, nothing changes for a while: the operator's API writes and SSH sessions in that window,
broken down by what wrote (verb, resource) and why (the fields each write changed, from a watch),
extrapolated per hour and per SSVM.

  .venv/bin/python bench/steady_bench.py [--zones 50] [--minutes 10] [--health-interval 60] [--control-plane dev|real]
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import watch  # noqa: E402
from bench.reconcile_bench import control_plane  # noqa: E402
from ssvm_devcluster.sim_guests import count_sessions  # noqa: E402
from ssvm_devcluster.sim_guests import GuestSimConfig, GuestSimulator  # noqa: E402
from ssvm_devcluster.sim_kubevirt import KubeVirtSimConfig, KubeVirtSimulator  # noqa: E402
from ssvm_operator import constants as c  # noqa: E402
from tests.integration.harness import Api, condition  # noqa: E402
from tests.processes import start_with_kubeconfig, stop_process  # noqa: E402

BENCH_AGENT = "ssvm-steady-bench"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
IGNORED = ("metadata.resourceVersion", "metadata.managedFields", "metadata.generation")


def changed_paths(old: Any, new: Any, prefix: str = "") -> set[str]:
    """Dotted paths whose value differs; lists compare whole; timestamps are changes too."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: set[str] = set()
        for key in set(old) | set(new):
            path = f"{prefix}.{key}" if prefix else str(key)
            if path.startswith(IGNORED):
                continue
            out |= changed_paths(old.get(key), new.get(key), path)
        return out
    return set() if old == new else {prefix}


class ChangeWatch:
    """Tallies, per kind, which fields each modification changed (the 'why' of every write)."""

    def __init__(self, api: Api) -> None:
        self.api, self.stop = api, threading.Event()
        self.counts: collections.Counter[str] = collections.Counter()
        self.active = False
        self.threads = [threading.Thread(target=self._run, args=(p,), daemon=True)
                        for p in (c.ZONE_PLURAL, c.IMAGESTORE_PLURAL, c.SSVM_PLURAL)]

    def _run(self, plural: str) -> None:
        last: dict[str, Any] = {o["metadata"]["name"]: o for o in self.api.list(plural)}
        w = watch.Watch()
        while not self.stop.is_set():
            for ev in w.stream(self.api.custom.list_namespaced_custom_object, c.GROUP, c.VERSION, self.api.ns, plural, timeout_seconds=5):
                obj = ev["object"]
                name = obj["metadata"]["name"]
                if self.active and ev["type"] == "MODIFIED" and name in last:
                    paths = changed_paths(last[name], obj)
                    self.counts[f"{plural}: {', '.join(sorted(paths)) or '(nothing)'}"] += 1
                last[name] = obj

    def __enter__(self) -> "ChangeWatch":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()


def run(kind: str, zones: int, minutes: float, health_interval: int, timeout: float) -> dict[str, Any]:
    sessions = count_sessions()
    with tempfile.TemporaryDirectory(prefix="steady-bench-") as tmp:
        sims = [KubeVirtSimulator(KubeVirtSimConfig(boot_delay=0.2)),
                GuestSimulator(GuestSimConfig(state_root=f"{tmp}/guests", copy_port=0))]
        with control_plane(kind, pathlib.Path(tmp), sims, BENCH_AGENT) as plane:
            api = plane.api
            for z in range(zones):
                api.create(c.ZONE_PLURAL, c.ZONE_KIND, f"z{z}", {"secondaryStorage": {
                    "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}},
                    "health": {"intervalSeconds": health_interval}}})
                api.store(f"z{z}-s1", f"z{z}")
            log = pathlib.Path(tmp) / "operator.log"
            proc = start_with_kubeconfig([sys.executable, "-m", "ssvm_operator.cli", "run", "-n", api.ns, "--liveness", "none",
                                          "--metrics-port", "0", "--log-level", "WARNING"], plane.operator_kubeconfig, log)
            try:
                started = time.monotonic()
                while True:
                    ssvms = api.list(c.SSVM_PLURAL)
                    if len(ssvms) == zones and all(condition(s, "Ready").get("status") == "True" and
                                                   ((s.get("status") or {}).get("health") or {}).get("healthy") for s in ssvms):
                        break
                    if time.monotonic() - started > timeout:
                        raise RuntimeError(f"not converged in {timeout:g} s; log tail:\n{log.read_text()[-2000:]}")
                    time.sleep(1.0)
                converged = time.monotonic() - started
                time.sleep(15)   # the last acknowledgements and the mesh's quiet period
                with ChangeWatch(api) as changes:
                    time.sleep(2)   # the watches are open
                    since = max((e["seq"] for e in plane.requests(0)), default=0)
                    sessions.clear()
                    changes.active = True
                    time.sleep(minutes * 60)
                    changes.active = False
                    entries = [e for e in plane.requests(since) if plane.operators(e)]
                    ssh = dict(sessions)
                    why = dict(changes.counts)
            finally:
                stop_process(proc, grace=30)
    per_hour = 60 / minutes
    by_verb = collections.Counter(f"{e['verb']} {e['resource']}{'/' + e['subresource'] if e['subresource'] else ''}"
                                  for e in entries if e["verb"] in WRITES)
    writes = sum(by_verb.values())
    return {
        "controlPlane": kind, "zones": zones, "ssvms": zones, "minutes": minutes, "healthIntervalSeconds": health_interval,
        "secondsToConverge": round(converged, 1),
        "writes": writes, "writesPerHour": round(writes * per_hour, 1), "writesPerSSVMPerHour": round(writes * per_hour / zones, 2),
        "writesByVerb": dict(by_verb.most_common()),
        "writesWhy": dict(sorted(why.items(), key=lambda kv: -kv[1])),
        "sshSessions": sum(ssh.values()), "sshSessionsPerSSVMPerHour": round(sum(ssh.values()) * per_hour / zones, 2),
        "sshSessionsByAction": ssh,
        "sshSessionsBeyondChecksPerHour": round(sum(n for a, n in ssh.items() if a != "check") * per_hour, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--health-interval", type=int, default=60, help="the zones' health.intervalSeconds")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--control-plane", choices=("dev", "real"), default="dev",
                        help="the embedded dev cluster, or kube-apiserver built by hack/build-control-plane.sh")
    args = parser.parse_args()
    r = run(args.control_plane, args.zones, args.minutes, args.health_interval, args.timeout)
    print(json.dumps(r, indent=2))
    print()
    print(f"{'zones':>6} {'minutes':>8} {'writes':>7} {'writes/SSVM/h':>14} {'SSH/SSVM/h':>11} {'SSH beyond checks/h':>20}")
    print(f"{r['zones']:>6} {r['minutes']:>8g} {r['writes']:>7} {r['writesPerSSVMPerHour']:>14} {r['sshSessionsPerSSVMPerHour']:>11} "
          f"{r['sshSessionsBeyondChecksPerHour']:>20}")
    for why, n in r["writesWhy"].items():
        print(f"  {n:>6}  {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
