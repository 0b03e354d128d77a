"""A cluster running the KubeVirt simulator, shared by this folder's integration tests: a dev cluster of
the module's own, then the real control plane with the simulator as a separate controller."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s, config as k8s_config

from ssvm_devcluster.sim_kubevirt import KubeVirtSimConfig, KubeVirtSimulator
from tests.clusters import CONTROL_PLANES, Cluster, with_simulators

SIM_CONFIG = KubeVirtSimConfig(boot_delay=0.2, network_ranges={"public-net": "203.0.113.0/24", "mgmt-net": "10.1.0.0/24"})


@pytest.fixture(scope="module", params=CONTROL_PLANES)
def kubevirt_cluster(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    real = request.getfixturevalue("real_control_plane") if request.param == "real" else None
    with with_simulators(request.param, [KubeVirtSimulator(SIM_CONFIG)], tmp_path_factory.mktemp("kubevirt-cluster"), real) as cluster:
        yield cluster


@pytest.fixture()
def api_client(kubevirt_cluster: Cluster) -> Iterator[k8s.ApiClient]:
    api = k8s_config.new_client_from_config(config_file=str(kubevirt_cluster.kubeconfig_path))
    yield api
    api.close()


@pytest.fixture()
def namespace(api_client: k8s.ApiClient) -> str:
    name = f"kv-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace.from_dict({"metadata": {"name": name}}))
    return name
