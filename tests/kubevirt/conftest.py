"""A dev cluster running the KubeVirt simulator, shared by this folder's integration tests."""
from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s, config as k8s_config

from ssvm_devcluster import DevCluster
from ssvm_devcluster.sim_kubevirt import KubeVirtSimConfig, KubeVirtSimulator
from tests.kubevirt.waiting import wait_for

SIM_CONFIG = KubeVirtSimConfig(boot_delay=0.2, network_ranges={"public-net": "203.0.113.0/24", "mgmt-net": "10.1.0.0/24"})


@pytest.fixture(scope="module")
def kubevirt_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    kubeconfig = tmp_path_factory.mktemp("kubevirt-devcluster") / "kubeconfig"
    with DevCluster(kubeconfig=kubeconfig, simulators=[KubeVirtSimulator(SIM_CONFIG)]) as cluster:
        # The simulator registers the KubeVirt CRDs once it runs: wait until they are served.
        wait_for(lambda: _served(cluster.url, "/apis/kubevirt.io/v1") and _served(cluster.url, "/apis/cdi.kubevirt.io/v1beta1"),
                 "the KubeVirt CRDs to be served")
        yield cluster


def _served(url: str, path: str) -> bool:
    try:
        with urllib.request.urlopen(url + path, timeout=5) as resp:
            return resp.status == 200
    except urllib.error.URLError:
        return False


@pytest.fixture()
def api_client(kubevirt_cluster: DevCluster) -> Iterator[k8s.ApiClient]:
    api = k8s_config.new_client_from_config(config_file=str(kubevirt_cluster.kubeconfig_path))
    yield api
    api.close()


@pytest.fixture()
def namespace(api_client: k8s.ApiClient) -> str:
    name = f"kv-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace.from_dict({"metadata": {"name": name}}))
    return name
