"""Tests that only make sense on the real control plane: a namespace of the test's own on it."""
from __future__ import annotations

import pytest

from tests.clusters import Cluster, real_cluster


@pytest.fixture()
def real(real_control_plane) -> Cluster:
    return real_cluster(real_control_plane)


@pytest.fixture()
def real_namespace(real) -> str:
    return real.namespace("r")
