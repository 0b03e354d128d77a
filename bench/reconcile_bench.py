"""Reaction and API cost on either control plane, with the in-memory VM backend.

Per run: a new Zone, then an ImageStore for it; measured from the store's creation to (1) the SSVM
object existing, (2) its VM existing in the backend, (3) the SSVM Running and Ready. Beside it, in the
same run and on the same control plane, the floor: a bare kopf handler that creates one ConfigMap when
another is created, measured the same way. `--existing 0 1000` repeats it all with that many converged
zones already there (reaction must not grow with them). Also: API requests the operator made per SSVM
created: from the dev cluster's request log (the bench's own requests carry their own user agent and
are left out), or on the real control plane from kube-apiserver's audit log (the operator's own
identity, the chart's ServiceAccount). Prints a JSON document, then a table.

  .venv/bin/python bench/reconcile_bench.py [--runs 100] [--existing 0 1000] [--control-plane dev|real]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import kopf  # noqa: E402
from kubernetes import client as k8s  # noqa: E402

from ssvm_operator import constants as c  # noqa: E402
from ssvm_operator.backends.memory import MemoryBackend  # noqa: E402
from ssvm_devcluster import DevCluster  # noqa: E402
from tests.conftest import kubectl_run  # noqa: E402
from tests.integration.harness import Api, OperatorThread, wait_for  # noqa: E402

BENCH_AGENT = "ssvm-reconcile-bench"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclasses.dataclass
class Plane:
    """A control plane for a bench: the bench's API helper, the operator's kubeconfig, the request log
    (`requests(since_seq)`) and which entries are the operator's."""

    api: Api
    admin_kubeconfig: pathlib.Path
    operator_kubeconfig: pathlib.Path
    requests: Callable[[int], list[dict]]
    operators: Callable[[dict], bool]


@contextlib.contextmanager
def control_plane(kind: str, tmp: pathlib.Path, simulators: Sequence[object] = (), agent: str = BENCH_AGENT) -> Iterator[Plane]:
    """The dev cluster or the real control plane, CRDs installed, a namespace, `simulators` running."""
    from tests.clusters import install_crds

    kubevirt = bool(simulators)
    if kind == "dev":
        with DevCluster(kubeconfig=tmp / "kubeconfig", simulators=list(simulators)) as cluster:
            os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path)
            install_crds(cluster.kubeconfig_path, kubevirt=kubevirt)
            kubectl_run(cluster.kubeconfig_path, "create", "namespace", "bench")
            api = Api(cluster.kubeconfig_path, "bench")
            api.client.user_agent = agent
            yield Plane(api, cluster.kubeconfig_path, cluster.kubeconfig_path, cluster.requests,
                        lambda e: not e["userAgent"].startswith((agent, "kubectl/", "ssvm-devcluster-simulator/")))
        return
    from ssvm_devcluster.controlplane import OPERATOR_USER, ControlPlane
    from ssvm_devcluster.simulators import SimulatorsThread
    from tests.clusters import real_cluster

    with ControlPlane(workdir=tmp / "control-plane", audit=True) as cp:
        install_crds(cp.kubeconfig_path, kubevirt=kubevirt)
        namespace = real_cluster(cp).namespace("bench")
        os.environ["KUBECONFIG"] = str(cp.operator_kubeconfig_path)   # the operator as the chart's ServiceAccount
        with SimulatorsThread(cp.kubeconfig_path, list(simulators)) if simulators else contextlib.nullcontext():
            yield Plane(Api(cp.kubeconfig_path, namespace), cp.kubeconfig_path, cp.operator_kubeconfig_path, cp.requests,
                        lambda e: e["user"] == OPERATOR_USER)


class Floor:
    """A bare kopf operator in its own thread: a ConfigMap labelled `in` makes it create `<name>-out`."""

    LABEL = "ssvm-bench-floor"

    def __init__(self, api: Api, kubeconfig: pathlib.Path) -> None:
        self.api, self.kubeconfig = api, kubeconfig
        self.registry = kopf.OperatorRegistry()
        self.stop_flag, self.ready_flag = threading.Event(), threading.Event()
        kopf.on.login(id="floor-login", registry=self.registry)(self._login)
        kopf.on.create("", "v1", "configmaps", id="floor-create-out", labels={self.LABEL: "in"},
                       registry=self.registry)(self._create_out)
        self.thread = threading.Thread(target=self._main, name="floor", daemon=True)

    def _login(self, **_: object) -> kopf.ConnectionInfo:
        """As the bench's own (admin) identity: on the real control plane the operator's may not watch ConfigMaps."""
        from ssvm_devcluster.simulators import Endpoint

        endpoint = Endpoint.from_kubeconfig(self.kubeconfig)
        return kopf.ConnectionInfo(server=endpoint.url, ca_path=endpoint.ca_file, token=endpoint.token)

    async def _create_out(self, name: str, namespace: str, **_: object) -> None:
        body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=f"{name}-out", labels={self.LABEL: "out"}))
        await asyncio.to_thread(self.api.core.create_namespaced_config_map, namespace, body)

    def _main(self) -> None:
        asyncio.run(kopf.operator(registry=self.registry, namespaces=[self.api.ns], standalone=True,
                                  stop_flag=self.stop_flag, ready_flag=self.ready_flag))

    def __enter__(self) -> "Floor":
        self.thread.start()
        assert self.ready_flag.wait(30), "the floor operator did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        self.thread.join(30)

    def once(self, run: int) -> float:
        name = f"floor-{run}"
        start = time.perf_counter()
        self.api.core.create_namespaced_config_map(self.api.ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(
            name=name, labels={self.LABEL: "in"})))
        wait_for("the floor's object", lambda: _exists(self.api, f"{name}-out"), interval=0.002)
        return time.perf_counter() - start


def _exists(api: Api, name: str) -> bool:
    try:
        api.core.read_namespaced_config_map(name, api.ns)
        return True
    except k8s.ApiException as e:
        if e.status == 404:
            return False
        raise


def _ready(body: dict | None) -> bool:
    status = (body or {}).get("status") or {}
    return status.get("state") == "Running" and any(
        x["type"] == "Ready" and x["status"] == "True" for x in status.get("conditions") or [])


def converge_existing(api: Api, memory: MemoryBackend, n: int) -> float:
    """`n` zones with one store each, converged before the runs; returns the seconds it took."""
    start = time.perf_counter()
    for i in range(n):
        api.zone(f"e{i}")
        api.store(f"e{i}-s1", f"e{i}")
    wait_for(f"{n} existing SSVMs running", lambda: sum(1 for s in api.list(c.SSVM_PLURAL) if _ready(s)) >= n,
             timeout=max(120.0, n * 0.5), interval=1.0)
    return time.perf_counter() - start


def stats(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values)}


def measure(kind: str, runs: int, existing: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, control_plane(kind, pathlib.Path(tmp)) as plane:
        api, requests, operators = plane.api, plane.requests, plane.operators
        memory = MemoryBackend(step_seconds=0.05)
        marks: dict[str, list[float]] = {"object": [], "vm": [], "ready": [], "floor": []}
        per_ssvm: list[int] = []
        verbs: Counter[str] = Counter()
        with OperatorThread(api.ns, memory, scan_interval=30.0), Floor(api, plane.admin_kubeconfig) as floor:
            existing_seconds = converge_existing(api, memory, existing) if existing else 0.0
            for run in range(runs):
                marks["floor"].append(floor.once(run))
                zone, ssvm = f"z{run}", f"z{run}-ssvm-1"
                api.zone(zone)
                time.sleep(0.3)   # let the zone settle (its own status writes are not the store's cost)
                since = max((e["seq"] for e in requests(0)), default=0)
                start = time.perf_counter()
                api.store(f"s{run}", zone)
                wait_for("the SSVM object", lambda: api.get(c.SSVM_PLURAL, ssvm), interval=0.002)
                marks["object"].append(time.perf_counter() - start)
                wait_for("its VM", lambda: (api.ns, ssvm) in memory.vms, interval=0.002)
                marks["vm"].append(time.perf_counter() - start)
                wait_for("Running and Ready", lambda: _ready(api.get(c.SSVM_PLURAL, ssvm)), interval=0.005)
                marks["ready"].append(time.perf_counter() - start)
                time.sleep(0.5)   # the zone's and SSVM's follow-up writes belong to this SSVM's cost
                mine = [e for e in requests(since) if operators(e) and e["verb"] != "watch" and e["resource"] != "configmaps"]
                per_ssvm.append(len(mine))
                verbs.update(f"{e['verb']} {e['resource']}{'/' + e['subresource'] if e['subresource'] else ''}" for e in mine)
    floor_p99 = percentile(marks["floor"], 99)
    return {
        "control_plane": kind, "runs": runs, "existing_zones": existing, "existing_converged_seconds": round(existing_seconds, 1),
        "floor_seconds": stats(marks["floor"]),
        "store_to_ssvm_object_seconds": stats(marks["object"]),
        "store_to_vm_seconds": stats(marks["vm"]),
        "store_to_ready_seconds": stats(marks["ready"]),
        "ready_p99_over_floor_p99": round(percentile(marks["ready"], 99) / floor_p99, 1),
        "object_p99_over_floor_p99": round(percentile(marks["object"], 99) / floor_p99, 1),
        "api_requests_per_ssvm": {"mean": statistics.mean(per_ssvm), "min": min(per_ssvm), "max": max(per_ssvm)},
        "requests_by_kind_per_ssvm": {k: round(v / runs, 2) for k, v in verbs.most_common()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--existing", type=int, nargs="+", default=[0], help="converged zones present before the runs")
    parser.add_argument("--control-plane", choices=("dev", "real"), default="dev",
                        help="the embedded dev cluster, or kube-apiserver built by hack/build-control-plane.sh")
    args = parser.parse_args()
    results = [measure(args.control_plane, args.runs, n) for n in args.existing]
    print(json.dumps(results, indent=2))
    print()
    print(f"{'existing':>9} {'measure':<26}{'p50 s':>9}{'p99 s':>9}{'max s':>9}")
    for r in results:
        for label, key in (("floor (bare kopf)", "floor_seconds"), ("store -> SSVM object", "store_to_ssvm_object_seconds"),
                           ("store -> VM", "store_to_vm_seconds"), ("store -> Running, Ready", "store_to_ready_seconds")):
            m = r[key]
            print(f"{r['existing_zones']:>9} {label:<26}{m['p50']:>9.3f}{m['p99']:>9.3f}{m['max']:>9.3f}")
        print(f"{r['existing_zones']:>9} p99 / floor p99: object {r['object_p99_over_floor_p99']}x, Ready {r['ready_p99_over_floor_p99']}x;"
              f" {r['api_requests_per_ssvm']['mean']:.1f} API requests per SSVM")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
