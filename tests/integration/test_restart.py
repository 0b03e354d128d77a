"""An operator killed in the middle of creating SSVMs and started again leaves exactly the expected objects and VMs."""
from __future__ import annotations

import pathlib
import signal
import subprocess
import sys

from ssvm_operator.backends.memory import load_saved_vms
from tests.processes import start_with_kubeconfig, stop_process
import pytest

from .harness import states, wait_for

pytestmark = pytest.mark.integration


def start_operator(kubeconfig: str, namespace: str, state_file: pathlib.Path, log: pathlib.Path) -> subprocess.Popen:
    exe = pathlib.Path(sys.executable).parent / "ssvm-operator"
    cmd = [str(exe), "run", "-n", namespace, "--backend-override", f"memory:{state_file}", "--liveness", "none",
           "--metrics-port", "0", "--scan-interval", "3", "--log-level", "WARNING"]
    return start_with_kubeconfig(cmd, kubeconfig, log, append=True)


def vms(state_file: pathlib.Path) -> set[str]:
    return {name for _, name in load_saved_vms(str(state_file))}


def test_restart_mid_creation_creates_no_duplicates(api, cluster, tmp_path):
    state_file, log = tmp_path / "vms.json", tmp_path / "operator.log"
    first = start_operator(cluster.operator_kubeconfig_path, api.ns, state_file, log)
    try:
        api.zone("z1")
        for i in range(3):
            api.store(f"s{i}", "z1")
        wait_for("the first SSVM object", lambda: api.ssvms(), interval=0.01)
    finally:
        first.send_signal(signal.SIGKILL)   # no clean shutdown: whatever was half done stays half done
        first.wait(10)
    second = start_operator(cluster.operator_kubeconfig_path, api.ns, state_file, log)
    try:
        expected = {"z1-ssvm-1", "z1-ssvm-2", "z1-ssvm-3"}
        wait_for("3 running SSVMs", lambda: states(api) == dict.fromkeys(expected, "Running"), timeout=60)
        wait_for("3 VMs", lambda: vms(state_file) == expected)
        assert set(api.ssvms()) == expected
    finally:
        stop_process(second)
