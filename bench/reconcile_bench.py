"""Reconciler latency and API cost on either control plane, with the in-memory VM backend.

Per run: a new Zone, then an ImageStore for it; measured from the store's creation to (1) the SSVM
object existing and (2) its VM existing in the backend. Also: API requests the operator made per SSVM
created: from the dev cluster's request log (the bench's own requests carry their own user agent and
are left out), or on the real control plane from kube-apiserver's audit log (the operator's own
identity, the chart's ServiceAccount). Prints a JSON document, then a table.

  .venv/bin/python bench/reconcile_bench.py [--runs 50] [--control-plane dev|real]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

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


@contextlib.contextmanager
def control_plane(kind: str, tmp: pathlib.Path) -> Iterator[tuple[Api, Callable[[int], list[dict]], Callable[[dict], bool]]]:
    """(the bench's API helper, the operator's requests since a sequence number, which of them are the operator's)."""
    root = pathlib.Path(__file__).resolve().parents[1]
    if kind == "dev":
        with DevCluster(kubeconfig=tmp / "kubeconfig", simulators=[]) as cluster:
            os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path)
            kubectl_run(cluster.kubeconfig_path, "apply", "-f", str(root / "crds"))
            kubectl_run(cluster.kubeconfig_path, "create", "namespace", "bench")
            api = Api(cluster.kubeconfig_path, "bench")
            api.client.user_agent = BENCH_AGENT
            yield api, cluster.requests, lambda e: e["userAgent"] != BENCH_AGENT
        return
    from ssvm_devcluster.controlplane import OPERATOR_USER, ControlPlane
    from tests.clusters import install_crds, real_cluster

    with ControlPlane(workdir=tmp / "control-plane", audit=True) as cp:
        install_crds(cp.kubeconfig_path, kubevirt=False)
        cluster = real_cluster(cp)
        namespace = cluster.namespace("bench")
        os.environ["KUBECONFIG"] = str(cp.operator_kubeconfig_path)   # the operator as the chart's ServiceAccount
        yield Api(cp.kubeconfig_path, namespace), cp.requests, lambda e: e["user"] == OPERATOR_USER


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--control-plane", choices=("dev", "real"), default="dev",
                        help="the embedded dev cluster, or kube-apiserver built by hack/build-control-plane.sh")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, control_plane(args.control_plane, pathlib.Path(tmp)) as (api, requests, operators):
        memory = MemoryBackend(step_seconds=0.05)
        to_object: list[float] = []
        to_vm: list[float] = []
        per_ssvm: list[int] = []
        verbs: Counter[str] = Counter()
        with OperatorThread(api.ns, memory, scan_interval=30.0):
            for run in range(args.runs):
                zone, ssvm = f"z{run}", f"z{run}-ssvm-1"
                api.zone(zone)
                time.sleep(0.3)   # let the zone settle (its own status writes are not the store's cost)
                since = max((e["seq"] for e in requests(0)), default=0)
                start = time.perf_counter()
                api.store(f"s{run}", zone)
                wait_for("the SSVM object", lambda: api.get(c.SSVM_PLURAL, ssvm), interval=0.002)
                to_object.append(time.perf_counter() - start)
                wait_for("its VM", lambda: (api.ns, ssvm) in memory.vms, interval=0.002)
                to_vm.append(time.perf_counter() - start)
                wait_for("running", lambda: (api.get(c.SSVM_PLURAL, ssvm).get("status") or {}).get("state") == "Running",
                         interval=0.01)
                time.sleep(0.5)   # the zone's and SSVM's follow-up writes belong to this SSVM's cost
                mine = [e for e in requests(since) if operators(e) and e["verb"] != "watch"]
                per_ssvm.append(len(mine))
                verbs.update(f"{e['verb']} {e['resource']}{'/' + e['subresource'] if e['subresource'] else ''}" for e in mine)
    result = {
        "control_plane": args.control_plane,
        "runs": args.runs,
        "store_to_ssvm_object_seconds": {"p50": percentile(to_object, 50), "p99": percentile(to_object, 99), "max": max(to_object)},
        "store_to_vm_seconds": {"p50": percentile(to_vm, 50), "p99": percentile(to_vm, 99), "max": max(to_vm)},
        "api_requests_per_ssvm": {"mean": statistics.mean(per_ssvm), "min": min(per_ssvm), "max": max(per_ssvm)},
        "requests_by_kind_per_ssvm": {k: round(v / args.runs, 2) for k, v in verbs.most_common()},
    }
    print(json.dumps(result, indent=2))
    print()
    print(f"{'measure':<34}{'p50':>10}{'p99':>10}{'max':>10}")
    for label, key in (("store -> SSVM object (s)", "store_to_ssvm_object_seconds"), ("store -> VM (s)", "store_to_vm_seconds")):
        r = result[key]
        print(f"{label:<34}{r['p50']:>10.3f}{r['p99']:>10.3f}{r['max']:>10.3f}")
    r = result["api_requests_per_ssvm"]
    print(f"{'API requests per SSVM (mean/min/max)':<34}{r['mean']:>10.1f}{r['min']:>10}{r['max']:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
