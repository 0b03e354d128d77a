"""Integration fixtures: the project's CRDs in the shared dev cluster, an API helper, the operator in a thread."""
from __future__ import annotations

import pathlib

import pytest

from ssvm_operator.backends.memory import MemoryBackend
from tests.conftest import kubectl_run

from .harness import Api, OperatorThread, kubeconfig_env

CRDS = pathlib.Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def crds_applied(devcluster) -> None:
    kubectl_run(devcluster.kubeconfig_path, "apply", "-f", str(CRDS))


@pytest.fixture()
def api(devcluster, crds_applied, devcluster_namespace, monkeypatch) -> Api:
    monkeypatch.setenv("KUBECONFIG", str(devcluster.kubeconfig_path))
    kubeconfig_env(devcluster.kubeconfig_path)
    return Api(devcluster.kubeconfig_path, devcluster_namespace)


@pytest.fixture()
def memory() -> MemoryBackend:
    return MemoryBackend(step_seconds=0.05)


@pytest.fixture()
def operator(api, memory):
    with OperatorThread(api.ns, memory, scan_interval=3.0) as op:
        yield op
