"""RBAC of least privilege: the chart grants exactly the API calls the operator makes.

The live tests run the operator (with the chart's Deployment arguments) against the dev cluster,
read the dev cluster's request log, and compare the permissions those requests needed with what the
chart's Roles and ClusterRoles grant. The unit tests check the derivation itself on recorded entries.
"""
from __future__ import annotations

import json
import pathlib

import pytest

from tests.conftest import kubectl_run

from . import rbac
from .helm import CHART, NAMESPACE, ROOT, render
from .operator_run import is_operator, run_operator_on_examples

SA = "ssvm-operator"
SAMPLE = pathlib.Path(__file__).parent / "fixtures" / "request_log_sample.json"

# Grants the chart carries for calls of handlers that have not landed yet, so no run exercises them:
# (group, resource, verb) -> the feature that will make the call. Remove an entry when its feature lands
# (test_pending_grants_are_still_unused fails once the operator uses one).
PENDING: dict[tuple[str, str, str], str] = {
    ("", "secrets", "update"): "operator key rotation: promoting <key>.next (only while a rotation runs)",
}
# Grants of a path a run reaches only when a write races another (the status writer re-reads the object after a
# 409 Conflict, kube/status.py) or a watch lags. Whether a run hits one depends on timing, so neither way is asserted.
ON_CONFLICT: dict[tuple[str, str, str], str] = {
    ("ssvm.io", "zones", "get"): "re-read a Zone after its status patch met a newer version",
    ("ssvm.io", "secondarystoragevms", "get"): "re-read an SSVM after its status patch met a newer version",
    ("ssvm.io", "templates", "get"): "re-read a Template after its status patch met a newer version",
    # the KubeVirt backend answers from its watch of VMs and instances and reads one only while the watch has
    # not shown it (backends/kubevirt/cache.py): a run whose watch always keeps up makes no such read
    ("kubevirt.io", "virtualmachines", "get"): "read a VM the watch has not shown yet",
    ("kubevirt.io", "virtualmachineinstances", "get"): "read an instance the watch has not shown yet",
}


def _key(grant) -> tuple[str, str, str]:
    return (grant.group, grant.resource, grant.verb)


# --- the derivation, on recorded and hand-written entries -----------------------------------------

def entry(verb, group, resource, namespace=None, subresource="", ua="kopf/1.45.2", resource_request=True):
    return {"verb": verb, "group": group, "resource": resource, "subresource": subresource, "namespace": namespace,
            "userAgent": ua, "resourceRequest": resource_request, "code": 200}


def test_required_permissions_from_recorded_log():
    entries = json.loads(SAMPLE.read_text())
    needed = rbac.required(entries, is_operator)
    assert rbac.Permission("ssvm.io", "zones/status", "patch", "cloud") in needed
    assert rbac.Permission("apiextensions.k8s.io", "customresourcedefinitions", "watch", None) in needed
    assert not any(p.resource == "" for p in needed), "discovery needs no RBAC"
    assert not any(p.verb == "create" and p.resource == "zones" for p in needed), "kubectl's own calls are not the operator's"


def test_missing_and_unused_against_rendered_roles():
    docs = render()
    grants = rbac.granted(docs, SA, NAMESPACE)
    needed = rbac.required([entry("list", "ssvm.io", "zones"), entry("patch", "ssvm.io", "zones", "cloud", "status"),
                            entry("get", "", "configmaps", "cloud"), entry("get", "", "", resource_request=False)])
    assert rbac.missing(needed, grants) == [rbac.Permission("", "configmaps", "get", "cloud")]
    unused = {_key(g) for g in rbac.unused(needed, grants)}
    assert ("ssvm.io", "zones", "list") not in unused and ("ssvm.io", "zones", "delete") not in unused
    assert ("kubevirt.io", "virtualmachines", "create") in unused


def test_a_role_grants_only_in_its_namespace():
    docs = render(sets=["watch.namespaces={cloud}"])
    grants = rbac.granted(docs, SA, NAMESPACE)
    inside = rbac.Permission("ssvm.io", "zones", "list", "cloud")
    outside = rbac.Permission("ssvm.io", "zones", "list", "other")
    everywhere = rbac.Permission("ssvm.io", "zones", "list", None)
    assert rbac.missing([inside, outside, everywhere], grants) == sorted([outside, everywhere], key=rbac.Permission.sort_key)


def test_namespaces_are_cluster_scoped_and_bindings_must_name_the_service_account():
    (p,) = rbac.required([entry("get", "", "namespaces", "cloud")])
    assert p.namespace is None
    assert rbac.granted(render(), "someone-else", NAMESPACE) == set()


def test_the_chart_grants_no_wildcards_in_any_mode():
    for sets in ([], ["watch.namespaces={a,b}"], ["replicaCount=3"], ["replicaCount=2", "watch.namespaces={a}"]):
        assert rbac.wildcards(rbac.granted(render(sets=sets), SA, NAMESPACE)) == []


# --- live: the operator against the dev cluster -------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ssvm_devcluster import DevCluster

    with DevCluster(kubeconfig=tmp_path_factory.mktemp("rbac") / "kubeconfig") as c:
        kubectl_run(c.kubeconfig_path, "apply", "--server-side", "-f", str(ROOT / "crds"),
                    "-f", str(CHART / "crds" / "kopf-peering.yaml"))
        yield c


@pytest.fixture(scope="module")
def clusterwide_run(cluster, tmp_path_factory):
    # two replicas: cluster-wide, with kopf peering
    docs = render(sets=["replicaCount=2"])
    kubectl_run(cluster.kubeconfig_path, "create", "namespace", "rbac-a")
    return docs, run_operator_on_examples(cluster, docs, "rbac-a", tmp_path_factory.mktemp("run-a"))


@pytest.fixture(scope="module")
def namespaced_run(cluster, tmp_path_factory):
    docs = render(sets=["watch.namespaces={rbac-b}"])
    kubectl_run(cluster.kubeconfig_path, "create", "namespace", "rbac-b")
    return docs, run_operator_on_examples(cluster, docs, "rbac-b", tmp_path_factory.mktemp("run-b"))


@pytest.mark.integration
@pytest.mark.parametrize("run", ["clusterwide_run", "namespaced_run"])
def test_the_chart_grants_every_call_the_operator_made(run, request):
    docs, entries = request.getfixturevalue(run)
    needed = rbac.required(entries)
    assert needed, "the operator made no API calls"
    missing = rbac.missing(needed, rbac.granted(docs, SA, NAMESPACE))
    assert not missing, "the chart does not grant: " + "; ".join(map(str, missing))


@pytest.mark.integration
@pytest.mark.parametrize("run", ["clusterwide_run", "namespaced_run"])
def test_the_chart_grants_nothing_the_operator_does_not_use(run, request):
    docs, entries = request.getfixturevalue(run)
    unused = [g for g in rbac.unused(rbac.required(entries), rbac.granted(docs, SA, NAMESPACE))
              if _key(g) not in PENDING and _key(g) not in ON_CONFLICT]
    assert not unused, "granted but never used: " + "; ".join(f"{g.verb} {g.group or 'core'}/{g.resource}" for g in unused)


@pytest.mark.integration
def test_peering_calls_are_granted_and_used(clusterwide_run):
    docs, entries = clusterwide_run
    needed = rbac.required(entries)
    assert {p.verb for p in needed if p.resource == "clusterkopfpeerings"} == {"list", "watch", "patch"}


@pytest.mark.integration
def test_pending_grants_are_still_unused(clusterwide_run, namespaced_run):
    used = {(p.group, p.resource, p.verb) for _, entries in (clusterwide_run, namespaced_run) for p in rbac.required(entries)}
    landed = sorted(k for k in PENDING if k in used)
    assert not landed, f"now used, remove from PENDING: {landed}"
