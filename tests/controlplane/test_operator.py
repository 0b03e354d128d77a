"""The operator against the real kube-apiserver, logged in as the chart's ServiceAccount and authorised
only by the ClusterRole/Role the chart renders: a missing grant is a real 403."""
from __future__ import annotations

import pytest
import yaml

from ssvm_devcluster.controlplane import OPERATOR_ACCOUNT, OPERATOR_NAMESPACE
from ssvm_operator import constants as c
from ssvm_operator.backends.memory import MemoryBackend
from tests.chart.helm import CHART, helm
from tests.integration.harness import Api, OperatorThread, condition, states
from tests.waiting import wait_for

from .conftest import kubectl

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def chart_rbac(namespace: str) -> list[dict]:
    out = helm("template", "ssvm", str(CHART), "--namespace", OPERATOR_NAMESPACE, "--set", f"serviceAccount.name={OPERATOR_ACCOUNT}",
               "--set", f"watch.namespaces={{{namespace}}}").stdout
    return [d for d in yaml.safe_load_all(out) if d and d["kind"] in RBAC_KINDS]


@pytest.fixture()
def real_api(control_plane, real_namespace, monkeypatch) -> Api:
    cp = control_plane
    kubectl(cp.kubeconfig_path, "create", "namespace", OPERATOR_NAMESPACE, check=False)
    docs = chart_rbac(real_namespace)
    assert {d["kind"] for d in docs} >= {"ServiceAccount", "Role", "RoleBinding", "ClusterRole"}
    kubectl(cp.kubeconfig_path, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    monkeypatch.setenv("KUBECONFIG", str(cp.operator_kubeconfig_path))   # the operator's identity, not the admin's
    return Api(str(cp.kubeconfig_path), real_namespace)


def test_the_operator_is_refused_what_the_chart_does_not_grant(control_plane, real_api):
    proc = kubectl(control_plane.operator_kubeconfig_path, "get", "pods", "-n", real_api.ns, check=False)
    assert proc.returncode != 0 and "Forbidden" in proc.stderr


def test_a_zone_converges_and_its_deletion_removes_every_ssvm(real_api):
    api = real_api
    with OperatorThread(api.ns, MemoryBackend(step_seconds=0.05), scan_interval=3.0) as op:
        api.zone("z1")
        api.store("s1", "z1")
        api.store("s2", "z1")
        wait_for("two SSVMs Running", lambda: sorted(states(api).items()) == [("z1-ssvm-1", "Running"), ("z1-ssvm-2", "Running")], 60)
        wait_for("the zone Ready", lambda: condition(api.get(c.ZONE_PLURAL, "z1"), "Ready").get("status") == "True", 30)
        owners = {s["metadata"]["name"]: s["metadata"]["ownerReferences"][0]["name"] for s in api.list(c.SSVM_PLURAL)}
        assert owners == {"z1-ssvm-1": "z1", "z1-ssvm-2": "z1"}
        api.delete(c.ZONE_PLURAL, "z1")
        wait_for("zone and SSVMs gone", lambda: api.get(c.ZONE_PLURAL, "z1") is None and not api.list(c.SSVM_PLURAL), 60)
        assert op.error is None, op.error
