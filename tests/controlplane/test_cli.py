"""`ssvm-operator devcluster --control-plane real`: the real control plane as a process, with the simulators
as separate controllers; stopped cleanly, nothing left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.conftest import kubectl_run
from tests.waiting import wait_for


def test_the_real_control_plane_serves_both_identities_runs_the_simulators_and_stops_cleanly(tmp_path):
    kubeconfig = tmp_path / "kc" / "admin"
    proc = subprocess.Popen([sys.executable, "-m", "ssvm_operator.cli", "devcluster", "--control-plane", "real",
                             "--kubeconfig", str(kubeconfig)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == f"kubeconfig: {kubeconfig}\n"
        operator_line = proc.stdout.readline()
        assert operator_line.startswith("operator-kubeconfig: ")
        operator_kubeconfig = operator_line.split(": ", 1)[1].strip()
        workdir = os.path.dirname(operator_kubeconfig)
        who = kubectl_run(operator_kubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout
        assert who == "system:serviceaccount:ssvm-system:ssvm-operator"
        assert "namespace/ssvm-system" in kubectl_run(kubeconfig, "get", "namespaces", "-o", "name").stdout
        # the KubeVirt simulator registers KubeVirt's CRDs through the API, as KubeVirt's operator would
        wait_for("KubeVirt served", lambda: kubectl_run(kubeconfig, "get", "--raw", "/apis/kubevirt.io/v1", check=False).returncode == 0, 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not os.path.exists(workdir), "the control plane's directory (etcd data, certificates) is left behind"
        assert subprocess.run(["pgrep", "-f", "--", f"--data-dir {workdir}/etcd"], capture_output=True).returncode == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_the_port_option_is_refused_for_the_real_control_plane(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ssvm_operator.cli", "devcluster", "--control-plane", "real", "--port", "6443",
                           "--kubeconfig", str(tmp_path / "kc")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--port applies to the dev cluster only" in proc.stderr
