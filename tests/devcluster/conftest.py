"""Fixtures of the dev cluster's fidelity tests, which run on both control planes (differential testing:
what the real kube-apiserver does is what the dev cluster must do): an HTTP client of the API as the
admin, a namespace, kubectl, and the test CRD. Tests of what only the dev cluster has (its request log,
its CLI, its simulators, its compaction knob) ask for `devcluster` directly."""
from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import yaml

from tests.clusters import wait_established
from tests.devcluster.helpers import Http

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def widgets_crd(cluster) -> dict[str, Any]:
    cluster.kubectl("apply", "-f", str(FIXTURES / "widgets-crd.yaml"))
    wait_established(cluster.kubeconfig_path)
    return yaml.safe_load((FIXTURES / "widgets-crd.yaml").read_text())


@pytest.fixture()
async def http(cluster, widgets_crd) -> AsyncIterator[Http]:
    from ssvm_devcluster.simulators import Endpoint
    async with Endpoint.from_kubeconfig(cluster.kubeconfig_path).session() as session:
        yield Http(cluster.url, session)


@pytest.fixture()
def ns(cluster) -> str:
    return cluster.namespace(operator=False)


@pytest.fixture()
def kubectl(cluster) -> Callable[..., Any]:
    """kubectl(*args, input=None, check=True) as the admin of the test's control plane."""
    return cluster.kubectl
