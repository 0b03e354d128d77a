"""Several operators with the chart's peering: the highest priority works, the others stand by; a killed
active one is replaced within the peering lifetime; two replicas started by hand on one machine never
pause each other; no SSVM is duplicated in any phase. Processes on both control planes."""
from __future__ import annotations

import json
import signal
import sys

import pytest
from ssvm_operator import constants as c

from tests.chart.helm import CHART
from tests.clusters import chart_documents, wait_established
from tests.processes import start_with_kubeconfig, stop_process

from .harness import Api, states, wait_for

pytestmark = pytest.mark.integration
PEERING = ("peering.enabled=true",)
LIFETIME = 6   # seconds; the chart's default is 15


def _operator(cluster, ns, priority, state, log):
    args = [sys.executable, "-m", "ssvm_operator.cli", "run", "-n", ns, "--liveness", "none", "--metrics-port", "0",
            "--scan-interval", "3", "--peering", "ssvm-operator", "--priority", priority,
            "--peering-lifetime", str(LIFETIME), "--backend-override", f"memory:{state}"]
    return start_with_kubeconfig(args, cluster.operator_kubeconfig_path, log, env={"POD_NAME": ""})


def _running(api, n):
    def check():
        s = states(api)
        return len(s) == n and all(v == "Running" for v in s.values()) and s
    return check


def test_a_standby_takes_over_from_a_killed_operator_without_duplicates(cluster, tmp_path):
    cluster.kubectl("apply", "--server-side", "-f", str(CHART / "crds" / "kopf-peering.yaml"))
    wait_established(cluster.kubeconfig_path)
    ns = cluster.namespace("peer", chart_sets=PEERING)
    (peering,) = [d for d in chart_documents(ns, PEERING) if d["kind"] == "KopfPeering"]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(peering))
    api = Api(str(cluster.kubeconfig_path), ns)
    state = tmp_path / "vms.json"
    logs = {n: tmp_path / f"{n}.log" for n in "abcd"}
    procs = {"a": _operator(cluster, ns, "200", state, logs["a"])}
    try:
        # kopf starts every replica paused and resumes one that finds no peer above it
        wait_for("a active", lambda: "Resuming operations" in logs["a"].read_text(), timeout=30)
        procs["b"] = _operator(cluster, ns, "100", state, logs["b"])
        api.zone("z1")
        api.store("s1", "z1")
        api.store("s2", "z1")
        wait_for("2 SSVMs running", _running(api, 2), timeout=60)
        assert "created SSVM" in logs["a"].read_text() and "created SSVM" not in logs["b"].read_text()
        assert "Resuming operations" not in logs["b"].read_text()

        procs["a"].send_signal(signal.SIGKILL)
        procs["a"].wait(10)
        api.store("s3", "z1")
        wait_for("b took over: 3 SSVMs running", _running(api, 3), timeout=LIFETIME * 4 + 30)
        assert set(api.ssvms()) == {"z1-ssvm-1", "z1-ssvm-2", "z1-ssvm-3"}

        # two more started by hand on this machine ('auto' priorities, no pod name): never both paused
        stop_process(procs.pop("b"), grace=20)
        procs["c"] = _operator(cluster, ns, "auto", state, logs["c"])
        procs["d"] = _operator(cluster, ns, "auto", state, logs["d"])
        api.store("s4", "z1")
        wait_for("4 SSVMs running with two 'auto' replicas", _running(api, 4), timeout=LIFETIME * 4 + 30)
        assert len(api.ssvms()) == 4
        assert not any("Possibly conflicting operators with the same priority" in logs[n].read_text() for n in "cd")
    finally:
        for proc in procs.values():
            stop_process(proc, grace=20)
    assert all(s["spec"]["zoneRef"] == "z1" for s in api.list(c.SSVM_PLURAL))
