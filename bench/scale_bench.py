"""Scale: N zones with S image stores each, created at once, the operator as its own process
(`ssvm-operator run`): time until every SSVM object exists, every VM exists, every zone is Ready; the
operator's peak RSS and CPU seconds beside this process's (the dev cluster's, and the simulators');
the operator's API requests and writes per SSVM by verb and resource (the dev cluster's request log, or
kube-apiserver's audit log with `--control-plane real`). `--guests none` runs the in-memory VM backend
(no guests: the control loop alone); `--guests sim` runs the KubeVirt simulator and simulated guests
(real SSH, the real agent) in processes of their own (`--guest-processes`, as guests are other machines),
counts SSH sessions per SSVM, and waits until every store is mounted too (requests are counted up to the
last mark). Several N in one run print the growth:
time and requests per SSVM against N. JSON, then a table.

  .venv/bin/python bench/scale_bench.py [--zones 100 300] [--stores 1] [--guests none|sim] [--guest-processes 2]
                                        [--control-plane dev|real]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import sys
import tempfile
import time
from collections import Counter
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssvm_operator import constants as c  # noqa: E402
from bench.reconcile_bench import Plane, control_plane  # noqa: E402
from ssvm_operator.backends.memory import load_saved_vms  # noqa: E402
from ssvm_devcluster.sim_kubevirt import KubeVirtSimConfig, KubeVirtSimulator  # noqa: E402
from tests.integration.harness import Api  # noqa: E402
from tests.processes import start_with_kubeconfig, stop_process  # noqa: E402

BENCH_AGENT = "ssvm-scale-bench"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
CONNECTIONS = "(connections)"


def _proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of a process, from /proc."""
    hwm = 0.0
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm, (int(fields[11]) + int(fields[12])) / ticks


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class GuestProcesses:
    """The simulated guests in `count` processes, each serving its shard of the VMs."""

    def __init__(self, kubeconfig: pathlib.Path, tmp: pathlib.Path, count: int) -> None:
        self.files = [tmp / f"sessions-{i}.json" for i in range(count)]
        self.procs = [start_with_kubeconfig([sys.executable, "-m", "ssvm_devcluster.sim_guests", "--kubeconfig", str(kubeconfig),
                                             "--state-root", str(tmp / "guests"), "--shard", f"{i}/{count}", "--copy-port", "0",
                                             "--sessions-file", str(self.files[i])], kubeconfig, tmp / f"guests-{i}.log")
                      for i in range(count)]

    def sessions(self) -> Counter:
        """Agent actions run by action, and SSH connections under "(connections)"."""
        total: Counter = Counter()
        for path in self.files:
            if path.exists():
                counts = json.loads(path.read_text())
                total.update(counts["actions"])
                total[CONNECTIONS] += counts["connections"]
        return total

    def cpu_seconds(self) -> float:
        return sum(_proc_stats(p.pid)[1] for p in self.procs if p.poll() is None)

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc, grace=30)


def _vm_count(api: Api, guests: str, vms_path: pathlib.Path) -> int:
    if guests == "sim":
        return len(api.custom.list_namespaced_custom_object("kubevirt.io", "v1", api.ns, "virtualmachines")["items"])
    return len(load_saved_vms(str(vms_path)))


def _ready_count(api: Api, plural: str) -> int:
    return sum(1 for o in api.list(plural) if any(
        x["type"] == "Ready" and x["status"] == "True" for x in (o.get("status") or {}).get("conditions") or []))


def run_once(kind: str, zones: int, stores: int, guests: str, timeout: float, guest_processes: int = 2,
             request_log: pathlib.Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        sims = [] if guests == "none" else [KubeVirtSimulator(KubeVirtSimConfig(boot_delay=0.2))]
        override = ["--backend-override", f"memory:{tmp}/vms.json"] if guests == "none" else []
        with control_plane(kind, pathlib.Path(tmp), sims, BENCH_AGENT) as plane:
            guest_procs = GuestProcesses(plane.admin_kubeconfig, pathlib.Path(tmp), guest_processes) if guests == "sim" else None
            try:
                return {"controlPlane": kind, **_measure(plane, pathlib.Path(tmp), zones, stores, guests, override, timeout,
                                                         guest_procs, request_log)}
            finally:
                if guest_procs is not None:
                    guest_procs.stop()


def _poll_interval(zones: int) -> float:
    """Listing every zone, store and SSVM costs the API server: the bigger the run, the rarer the look."""
    return min(2.0, max(0.5, zones / 500))


def _measure(plane: Plane, tmp: pathlib.Path, zones: int, stores: int, guests: str, override: list[str], timeout: float,
             guest_procs: GuestProcesses | None, request_log: pathlib.Path | None) -> dict[str, Any]:
    api = plane.api
    log = tmp / "operator.log"
    proc = start_with_kubeconfig([sys.executable, "-m", "ssvm_operator.cli", "run", "-n", api.ns, "--liveness", "none",
                                  "--metrics-port", "0", "--scan-interval", "30", "--log-level", "WARNING", *override],
                                 plane.operator_kubeconfig, log)
    try:
        since = max((e["seq"] for e in plane.requests(0)), default=0)
        cpu_dev0 = _self_cpu()
        cpu_guests0 = guest_procs.cpu_seconds() if guest_procs else 0.0
        sessions0 = guest_procs.sessions() if guest_procs else Counter()
        started = time.monotonic()
        for z in range(zones):
            api.zone(f"z{z}")
            for s in range(stores):
                api.store(f"z{z}-s{s}", f"z{z}")
        created = time.monotonic() - started
        want = zones * stores
        marks: dict[str, float] = {}
        vms_path = tmp / "vms.json"
        goal = 4 if guests == "sim" else 3   # with guests, converged means every store mounted too
        while len(marks) < goal:
            now = time.monotonic() - started
            if now > timeout:
                raise RuntimeError(f"not converged in {timeout:g} s: {marks}; log tail:\n{log.read_text()[-2000:]}")
            if "ssvmObjects" not in marks and len(api.list(c.SSVM_PLURAL)) >= want:
                marks["ssvmObjects"] = now
            if "ssvmObjects" in marks and "vms" not in marks and _vm_count(api, guests, vms_path) >= want:
                marks["vms"] = now
            if "vms" in marks and "zonesReady" not in marks and _ready_count(api, c.ZONE_PLURAL) == zones:
                marks["zonesReady"] = now
            elif "zonesReady" in marks and goal == 4 and _ready_count(api, c.IMAGESTORE_PLURAL) == want:
                marks["storesMounted"] = now
            time.sleep(_poll_interval(zones))
        rss, cpu_op = _proc_stats(proc.pid)
        cpu_dev = _self_cpu() - cpu_dev0
        cpu_guests = guest_procs.cpu_seconds() - cpu_guests0 if guest_procs else 0.0
        entries = [e for e in plane.requests(since) if plane.operators(e)]
        time.sleep(1.2 if guest_procs else 0)   # the guests write their counts every second
        ssh = (guest_procs.sessions() - sessions0) if guest_procs else Counter()
    finally:
        stop_process(proc, grace=30)
    ssvms = want
    if request_log is not None:   # the operator's requests in order, to see what wrote what and when
        request_log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    failed = sum(1 for e in entries if (e.get("code") or 200) >= 400)
    by_verb = Counter(f"{e['verb']} {e['resource']}{'/' + e['subresource'] if e['subresource'] else ''}" for e in entries)
    writes = sum(n for k, n in by_verb.items() if k.split()[0] in WRITES)
    return {
        "zones": zones, "storesPerZone": stores, "guests": guests, "ssvms": ssvms, "createSeconds": round(created, 2),
        "secondsTo": {k: round(v, 2) for k, v in marks.items()},
        "operator": {"peakRssMiB": round(rss, 1), "cpuSeconds": round(cpu_op, 1)},
        "thisProcessCpuSeconds": round(cpu_dev, 1), "guestProcessesCpuSeconds": round(cpu_guests, 1),
        "requestsPerSSVM": round(len(entries) / ssvms, 1), "writesPerSSVM": round(writes / ssvms, 1),
        "failedRequestsPerSSVM": round(failed / ssvms, 2),
        "byVerb": {k: round(n / ssvms, 2) for k, n in by_verb.most_common()},
        "sshSessionsPerSSVM": round(sum(n for k, n in ssh.items() if k != CONNECTIONS) / ssvms, 1),
        "sshConnectionsPerSSVM": round(ssh.get(CONNECTIONS, 0) / ssvms, 1),
        "sshByAction": {k: round(n / ssvms, 2) for k, n in sorted(ssh.items()) if k != CONNECTIONS},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--stores", type=int, default=1)
    parser.add_argument("--control-plane", choices=("dev", "real"), default="dev",
                        help="the embedded dev cluster, or kube-apiserver built by hack/build-control-plane.sh")
    parser.add_argument("--guests", choices=("none", "sim"), default="none",
                        help="none: the in-memory VM backend; sim: the KubeVirt simulator and simulated guests")
    parser.add_argument("--guest-processes", type=int, default=2, help="processes the simulated guests are spread over")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--request-log", type=pathlib.Path, help="write the last run's operator requests here, one JSON line each")
    args = parser.parse_args()
    results = [run_once(args.control_plane, n, args.stores, args.guests, args.timeout, args.guest_processes, args.request_log)
               for n in args.zones]
    print(json.dumps(results, indent=2))
    print()
    print(f"{'zones':>6} {'SSVMs':>6} {'objects s':>10} {'VMs s':>7} {'Ready s':>8} {'mounted s':>10} {'s/SSVM':>7} {'req/SSVM':>9} "
          f"{'writes/SSVM':>12} {'SSH/SSVM':>9} {'conn/SSVM':>10} {'op RSS MiB':>11} {'op CPU s':>9} {'bench CPU s':>11} {'guests CPU s':>13}")
    for r in results:
        t = r["secondsTo"]
        print(f"{r['zones']:>6} {r['ssvms']:>6} {t['ssvmObjects']:>10} {t['vms']:>7} {t['zonesReady']:>8} {t.get('storesMounted', '-'):>10} "
              f"{t.get('storesMounted', t['zonesReady']) / r['ssvms']:>7.3f} {r['requestsPerSSVM']:>9} {r['writesPerSSVM']:>12} {r['sshSessionsPerSSVM']:>9} {r['sshConnectionsPerSSVM']:>10} "
              f"{r['operator']['peakRssMiB']:>11} {r['operator']['cpuSeconds']:>9} {r['thisProcessCpuSeconds']:>11} "
              f"{r['guestProcessesCpuSeconds']:>13}")
    print()
    print("most requests per SSVM (last run):", ", ".join(f"{k} {v}" for k, v in list(results[-1]["byVerb"].items())[:8]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
