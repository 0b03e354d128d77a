"""Fixtures of the dev cluster's own tests: an HTTP client of its API and the test CRD."""
from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml

from tests.devcluster.helpers import Http

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def widgets_crd(devcluster) -> dict[str, Any]:
    from tests.conftest import kubectl_run
    kubectl_run(devcluster.kubeconfig_path, "apply", "-f", str(FIXTURES / "widgets-crd.yaml"))
    return yaml.safe_load((FIXTURES / "widgets-crd.yaml").read_text())


@pytest.fixture()
async def http(devcluster, widgets_crd) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(devcluster.url, session)


@pytest.fixture()
def ns(devcluster_namespace: str) -> str:
    return devcluster_namespace


