"""Integration fixtures: a namespace on each control plane (the shared dev cluster, then the real one), an
API helper for the test's own calls, and the operator in a thread logged in as the operator."""
from __future__ import annotations

import pytest

from ssvm_operator.backends.memory import MemoryBackend

from .harness import Api, OperatorThread


@pytest.fixture()
def api(cluster, monkeypatch) -> Api:
    monkeypatch.setenv("KUBECONFIG", str(cluster.operator_kubeconfig_path))   # the operator's identity
    return Api(str(cluster.kubeconfig_path), cluster.namespace())


@pytest.fixture()
def memory() -> MemoryBackend:
    return MemoryBackend(step_seconds=0.05)


@pytest.fixture()
def operator(api, memory):
    with OperatorThread(api.ns, memory, scan_interval=3.0) as op:
        yield op
