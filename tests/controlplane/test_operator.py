"""The operator's identity on the real kube-apiserver: the chart's ServiceAccount, authorised only by the
ClusterRole/Role the chart renders (tests/clusters.py applies them per namespace)."""
from __future__ import annotations

from tests.clusters import chart_rbac
from tests.conftest import kubectl_run


def test_the_chart_renders_the_rbac_the_real_cluster_binds():
    docs = chart_rbac("cloud")
    assert {d["kind"] for d in docs} >= {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] == "Role"} == {"cloud"}


def test_the_operator_is_refused_what_the_chart_does_not_grant(real, real_namespace):
    def can(*args: str) -> str:
        return kubectl_run(real.operator_kubeconfig_path, "auth", "can-i", *args, check=False).stdout.strip()

    assert can("list", "zones.ssvm.io", "-n", real_namespace) == "yes"
    assert can("patch", "zones.ssvm.io", "--subresource=status", "-n", real_namespace) == "yes"
    assert can("list", "zones.ssvm.io", "-n", "default") == "no"      # only the namespaces it watches
    assert can("get", "pods", "-n", real_namespace) == "no"
    proc = kubectl_run(real.operator_kubeconfig_path, "get", "pods", "-n", real_namespace, check=False)
    assert proc.returncode != 0 and "Forbidden" in proc.stderr
