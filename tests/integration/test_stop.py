"""The operator as a process stops within seconds of SIGTERM, even while a guest is slow to answer an
action: in-flight SSH work is abandoned, every wait is bounded, and the chart's grace period covers it."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest
from ssvm_operator import constants as c
from ssvm_operator.agent import cli as agent_cli

from tests.chart.helm import render
from tests.processes import start_with_kubeconfig, stop_process

from .harness import wait_for
from .test_guest_ops import _zone, gapi, guest_cluster  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


@pytest.fixture()
def slow_setup_store(monkeypatch):
    """The simulated guests' setup-store waits (up to 120 s) until the test lets it go."""
    started, release = threading.Event(), threading.Event()
    real = agent_cli.ACTIONS["setup-store"]

    def slow(ctx, payload):
        started.set()
        release.wait(120)
        return real(ctx, payload)

    monkeypatch.setitem(agent_cli.ACTIONS, "setup-store", slow)
    yield started
    release.set()


def _grace_period() -> int:
    (dep,) = [d for d in render() if d["kind"] == "Deployment"]
    return dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


def test_sigterm_mid_action_stops_within_the_charts_grace_period(gapi, guest_cluster, slow_setup_store, tmp_path):  # noqa: F811
    cluster, _ = guest_cluster
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    log = tmp_path / "operator.log"
    proc = start_with_kubeconfig([sys.executable, "-m", "ssvm_operator.cli", "run", "-n", gapi.ns, "--liveness", "none",
                                  "--metrics-port", "0", "--scan-interval", "3"], cluster.operator_kubeconfig_path, log)
    try:
        wait_for("the operator pushing setup-store to the guest", slow_setup_store.is_set, timeout=90)
        proc.send_signal(signal.SIGTERM)
        grace = _grace_period()
        try:
            code = proc.wait(timeout=grace - 10)   # well inside the grace period: kubelet never has to SIGKILL
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {grace - 10} s after SIGTERM; log:\n{log.read_text()[-3000:]}")
    finally:
        stop_process(proc, grace=5)
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    # kube-apiserver answers 429 "storage is (re)initializing" for a moment after a CRD is (re)created; kopf retries
    errors = [line for line in text.splitlines() if " ERROR " in line and "storage is (re)initializing" not in line]
    assert "Traceback" not in text and not errors, text[-3000:]
    # idle daemons end on their own at SIGTERM; only the one busy with the held action is cancelled (one WARNING)
    assert text.count("Will escalate") <= 1, text[-3000:]
    assert gapi.get(c.SSVM_PLURAL, "z1-ssvm-1") is not None
