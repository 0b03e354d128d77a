"""kopf against both control planes: a tiny operator of the test's own, and the project's operator."""
from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

from tests.processes import start_with_kubeconfig, stop_process
import pytest

from tests.devcluster.helpers import widget, widgets_path

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
REPO = pathlib.Path(__file__).resolve().parents[2]


def start(args: list[str], kubeconfig: pathlib.Path, log: pathlib.Path) -> subprocess.Popen:
    return start_with_kubeconfig(args, kubeconfig, log)


def stop(proc: subprocess.Popen, log: pathlib.Path) -> str:
    stop_process(proc)
    return log.read_text()


@pytest.fixture()
def tiny_operator(cluster, widgets_crd, ns, tmp_path) -> Iterator[pathlib.Path]:
    log = tmp_path / "kopf.log"
    proc = start([sys.executable, "-m", "kopf", "run", "--standalone", "-n", ns, "--liveness=",
                  str(FIXTURES / "kopf_widgets_operator.py")], cluster.kubeconfig_path, log)
    yield log
    stop(proc, log)


def ready(status, body) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return status == 200 and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def test_a_kopf_operator_reconciles_widgets(http, ns, tiny_operator, cluster):
    status, created = await http.post(widgets_path(ns), widget("k1", size=2))
    assert status == 201
    _, obj = await http.eventually(widgets_path(ns, "k1"), ready, timeout=60)
    assert obj["status"]["conditions"][0]["message"] == "size 2"
    assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
    assert obj["status"]["observedGeneration"] == 1

    await http.patch(widgets_path(ns, "k1"), {"spec": {"size": 3}})
    await http.eventually(widgets_path(ns, "k1"),
                          lambda s, b: s == 200 and (b.get("status") or {}).get("observedGeneration") == 2, timeout=60)

    # kopf removes its finalizer after the delete handler, and the object goes away
    status, _ = await http.delete(widgets_path(ns, "k1"))
    assert status == 200
    await http.eventually(widgets_path(ns, "k1"), lambda s, b: s == 404, timeout=60)

    # kopf posted events through the events API
    await http.eventually(f"/api/v1/namespaces/{ns}/events",
                          lambda s, b: any(e["involvedObject"]["name"] == "k1" for e in b["items"]), timeout=30)
    if not cluster.real:   # and the dev cluster's request log saw kopf's own user agent
        log = await http.get("/_devcluster/requests")
        assert any(e["userAgent"].startswith("kopf/") and e["verb"] == "watch" for e in log[1]["items"])


async def test_the_project_operator_sets_initial_conditions_on_the_examples(http, ns, kubectl, cluster, tmp_path):
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl("apply", "-n", ns, "-f", str(REPO / "examples"))
    log = tmp_path / "operator.log"
    proc = start([sys.executable, "-m", "ssvm_operator.cli", "run", "-n", ns, "--metrics-port", "0", "--liveness", "none"],
                 cluster.kubeconfig_path, log)
    try:
        for plural, name in [("zones", "zone1"), ("zones", "zone2"), ("imagestores", "zone1-nfs-a"),
                             ("secondarystoragevms", "zone1-extra-executor")]:
            path = f"/apis/ssvm.io/v1alpha1/namespaces/{ns}/{plural}/{name}"
            _, obj = await http.eventually(
                path, lambda s, b: s == 200 and any(c["type"] == "Ready" for c in (b.get("status") or {}).get("conditions", [])),
                timeout=60)
            assert all({"type", "status", "reason", "lastTransitionTime"} <= set(c) for c in obj["status"]["conditions"])
    finally:
        output = stop(proc, log)
    assert proc.returncode is not None, output
