"""Scrape the operator's /metrics during a run against the dev cluster and compare with the cluster's state."""
from __future__ import annotations

import json
import socket
import sys
import time
import urllib.request

from tests.processes import start_with_kubeconfig, stop_process
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import kubectl_run
from tests.manifests import ROOT

WAIT = 90  # seconds: upper bound of the wait for agreement, not a speed requirement
NS = "metrics"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as rsp:
        text = rsp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def expected_from_cluster(kubeconfig) -> dict[tuple[str, tuple], float]:
    """What the metrics must say, from the objects the operator wrote."""
    get = lambda kinds: json.loads(kubectl_run(kubeconfig, "get", "-n", NS, kinds, "-o", "json").stdout)["items"]  # noqa: E731
    zones, ssvms = get("zones"), get("secondarystoragevms")
    out: dict[tuple[str, tuple], float] = {}
    for zone in zones:
        name, status = zone["metadata"]["name"], zone.get("status") or {}
        labels = (("namespace", NS), ("zone", name))
        if "desiredSSVMs" not in status:
            return {}  # not reconciled yet
        out[("ssvm_operator_zone_desired_ssvms", labels)] = status["desiredSSVMs"]
        out[("ssvm_operator_zone_actual_ssvms", labels)] = status["actualSSVMs"]
        out[("ssvm_operator_zone_image_stores", tuple(sorted((*labels, ("access", "writable")))))] = status["writableImageStores"]
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        out[("ssvm_operator_zone_ready", labels)] = 1.0 if ready else 0.0
        for state in ("Creating", "Starting", "Running", "Stopping", "Stopped", "Migrating", "Destroyed", "Error"):
            n = sum(1 for s in ssvms if s["spec"]["zoneRef"] == name and not s["metadata"].get("deletionTimestamp")
                    and (s.get("status") or {}).get("state") == state)
            out[("ssvm_operator_ssvms", tuple(sorted((*labels, ("state", state)))))] = n
    # One SSVMCreated Event per SSVM the operator created (those it owns through a zone), counted once.
    created = sum(1 for s in ssvms if any(o.get("kind") == "Zone" for o in s["metadata"].get("ownerReferences", [])))
    out[("ssvm_operator_events_total", (("reason", "SSVMCreated"), ("type", "Normal")))] = created
    return out


@pytest.mark.integration
def test_metrics_agree_with_the_cluster(tmp_path):
    from ssvm_devcluster import DevCluster

    port = _free_port()
    with DevCluster(kubeconfig=tmp_path / "kubeconfig") as cluster:
        kc = cluster.kubeconfig_path
        kubectl_run(kc, "apply", "--server-side", "-f", str(ROOT / "crds"))
        kubectl_run(kc, "create", "namespace", NS)
        log = tmp_path / "operator.log"
        proc = start_with_kubeconfig([sys.executable, "-m", "ssvm_operator.cli", "run", "-n", NS, "--liveness", "none",
                                      "--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--scan-interval", "2"],
                                     kc, log)
        try:
            kubectl_run(kc, "apply", "-n", NS, "-f", str(ROOT / "examples"))
            deadline, last = time.monotonic() + WAIT, None
            while time.monotonic() < deadline:
                expected = expected_from_cluster(kc)
                try:
                    samples = scrape(port)
                except OSError:
                    samples = {}
                last = (expected, {k: samples.get(k) for k in expected})
                if expected and all(samples.get(k) == v for k, v in expected.items()):
                    break
                time.sleep(1)
            else:
                pytest.fail(f"metrics never matched the cluster: {last}\n{log.read_text()[-3000:]}")
            assert len({dict(k[1]).get("zone") for k in expected} - {None}) == 2, "both example zones are measured"
            assert sample(samples, "ssvm_operator_reconcile_duration_seconds_count", kind="Zone") >= 2
            assert sample(samples, "ssvm_operator_build_info", version=__import__("ssvm_operator").__version__) == 1
        finally:
            stop_process(proc, grace=30)
