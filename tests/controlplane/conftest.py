"""The real control plane (etcd, kube-apiserver, kube-controller-manager built from their Go modules)
for the tests in this folder: started once per session, the project's CRDs applied by the admin."""
from __future__ import annotations

import pathlib
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import kubectl_binary

CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"


def kubectl(kubeconfig: pathlib.Path, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([kubectl_binary(), "--kubeconfig", str(kubeconfig), *args], input=stdin, capture_output=True,
                          text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator["ControlPlane"]:  # noqa: F821
    from ssvm_devcluster.controlplane import ControlPlane

    with ControlPlane(workdir=tmp_path_factory.mktemp("control-plane")) as cp:
        kubectl(cp.kubeconfig_path, "apply", "-f", str(CRDS))
        for crd in CRDS.glob("*.yaml"):
            kubectl(cp.kubeconfig_path, "wait", "--for=condition=Established", "--timeout=30s", "-f", str(crd))
        yield cp


@pytest.fixture()
def real_namespace(control_plane) -> str:
    name = f"r-{uuid.uuid4().hex[:10]}"
    kubectl(control_plane.kubeconfig_path, "create", "namespace", name)
    return name
