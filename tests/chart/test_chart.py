"""The Helm chart: lints, renders valid Kubernetes objects with every ci/ values file, rejects bad values."""
from __future__ import annotations

import json

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .helm import CHART, NAMESPACE, ROOT, SCHEMAS, by_kind, ci_values, helm, render, template_args, values_args

CASES = [None, *ci_values()]
IDS = ["defaults", *[p.name for p in ci_values()]]
CRD_KINDS = {"ServiceMonitor", "ClusterKopfPeering", "KopfPeering"}


def _files(case):
    return [case] if case else []


def test_ci_folder_has_values_files():
    assert len(ci_values()) >= 3


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_helm_lint(case):
    proc = helm("lint", "--strict", str(CHART), *values_args(_files(case)))
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rendered_manifests_pass_kubernetes_validate(case):
    docs = render(_files(case), include_crds=True)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"} <= kinds
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue  # custom kinds: validated by their own schemas below
        kubernetes_validate.validate(doc, "1.37", strict=True)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_custom_kinds_validate_against_their_schemas(case):
    docs = render(_files(case))
    sm_schema = json.loads((SCHEMAS / "monitoring.coreos.com" / "servicemonitor_v1.json").read_text())
    for sm in by_kind(docs, "ServiceMonitor"):
        jsonschema.validate(sm, sm_schema)
    peering_crds = {c["spec"]["names"]["kind"]: c for c in yaml.safe_load_all((CHART / "crds" / "kopf-peering.yaml").read_text())}
    for doc in docs:
        if doc["kind"] in peering_crds:
            crd = peering_crds[doc["kind"]]
            assert doc["apiVersion"] == f"{crd['spec']['group']}/v1"
            assert ("namespace" in doc["metadata"]) == (crd["spec"]["scope"] == "Namespaced")


def test_service_monitor_selects_the_metrics_service():
    docs = render(sets=["metrics.serviceMonitor.enabled=true"])
    (sm,) = by_kind(docs, "ServiceMonitor")
    (svc,) = by_kind(docs, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "metrics"
    jsonschema.validate(sm, json.loads((SCHEMAS / "monitoring.coreos.com" / "servicemonitor_v1.json").read_text()))


def test_defaults_have_no_service_monitor_no_pdb_no_peering():
    kinds = {d["kind"] for d in render()}
    assert not kinds & {"ServiceMonitor", "PodDisruptionBudget", "ClusterKopfPeering", "KopfPeering"}


def _deployment(docs):
    (dep,) = by_kind(docs, "Deployment")
    return dep


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_restricted_pod_security(case):
    pod = _deployment(render(_files(case)))["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp": "tmp"}
    assert {v["name"]: v for v in pod["volumes"]}["tmp"]["emptyDir"] is not None
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_single_replica_recreates_and_probes_kopf_liveness():
    dep = _deployment(render())
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert "--all-namespaces" in args and "--liveness=http://0.0.0.0:8080/healthz" in args
    assert not any(a.startswith("--peering") for a in args)
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and probe["port"] == "healthz"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"healthz": 8080, "metrics": 9090}


def test_several_replicas_peer_with_distinct_priorities():
    docs = render(sets=["replicaCount=2"])
    dep = _deployment(docs)
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--peering=ssvm-operator" in args and "--priority=auto" in args
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    (peering,) = by_kind(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "ssvm-operator"
    (role,) = by_kind(docs, "ClusterRole")
    assert any("clusterkopfpeerings" in r["resources"] for r in role["rules"])


def test_auto_priority_differs_per_pod_name():
    from ssvm_operator.commands.run import peering_priority

    names = [f"ssvm-operator-5d9c7b-{suffix}" for suffix in ("abcde", "fghij", "klmno", "pqrst")]
    priorities = [peering_priority("auto", n) for n in names]
    assert len(set(priorities)) == len(names)
    assert priorities == [peering_priority("auto", n) for n in names]
    assert peering_priority("7") == 7


def test_auto_priority_differs_per_process_outside_pods(monkeypatch):
    """Two operators started by hand on one machine must not share a priority: kopf would pause both forever."""
    from ssvm_operator.commands.run import peering_priority

    monkeypatch.delenv("POD_NAME", raising=False)
    assert peering_priority("auto", pid=4242) != peering_priority("auto", pid=4243)
    assert peering_priority("auto", pid=4242) == peering_priority("auto", pid=4242)


def test_namespaced_watch_uses_roles_and_a_crd_only_clusterrole():
    docs = render(sets=["watch.namespaces={cloud,cloud-dr}"])
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["cloud", "cloud-dr"]
    assert sorted(b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")) == ["cloud", "cloud-dr"]
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert {res for r in cluster_role["rules"] for res in r["resources"]} == {"customresourcedefinitions", "namespaces"}
    args = _deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=cloud" in args and "--namespace=cloud-dr" in args and "--all-namespaces" not in args


def test_metrics_disabled_renders_no_service_and_port_zero():
    docs = render(sets=["metrics.enabled=false"])
    assert not by_kind(docs, "Service")
    assert "--metrics-port=0" in _deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"]


BAD_VALUES = {
    "unknown key": ["colour=blue"],
    "replicas not a number": ["replicaCount=two"],
    "negative replicas": ["replicaCount=-1"],
    "bad pull policy": ["image.pullPolicy=Sometimes"],
    "bad digest": ["image.digest=md5:abc"],
    "bad namespace name": ["watch.namespaces={Cloud_1}"],
    "port out of range": ["metrics.port=70000"],
    "bad log level": ["operator.logLevel=LOUD"],
    "root uid": ["securityContext.runAsUser=0"],
    "bad scrape interval": ["metrics.serviceMonitor.interval=soon"],
    "unknown securityContext field": ["securityContext.privileged=true"],
    "bad service type": ["metrics.service.type=ExternalName"],
}


@pytest.mark.parametrize("sets", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_values_schema_rejects_bad_values(sets):
    proc = helm("template", "x", str(CHART), *values_args(sets=sets), check=False)
    assert proc.returncode != 0, f"helm accepted {sets}"
    assert "schema" in proc.stderr.lower() or "values don't meet" in proc.stderr.lower() or "at '/" in proc.stderr, proc.stderr


def test_values_schema_accepts_the_defaults_and_is_draft7():
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)
    for path in ci_values():
        merged = yaml.safe_load((CHART / "values.yaml").read_text())
        _deep_merge(merged, yaml.safe_load(path.read_text()))
        jsonschema.validate(merged, schema)


def _deep_merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def test_chart_crds_are_the_generated_crds():
    chart_crds = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    repo_crds = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    assert repo_crds and all(chart_crds.get(name) == text for name, text in repo_crds.items()), \
        "run .venv/bin/python hack/gen_crds.py"
    # the only other file: kopf's peering CRDs
    assert set(chart_crds) - set(repo_crds) == {"kopf-peering.yaml"}


def test_all_objects_land_in_the_release_namespace():
    for doc in render():
        if doc["kind"] in {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}:
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("sets,words", [
    (["podDisruptionBudget.enabled=true"], "needs replicaCount of 2 or more"),
    (["metrics.enabled=false", "metrics.serviceMonitor.enabled=true"], "/metrics/serviceMonitor/enabled"),
    (["metrics.enabled=false", "metrics.prometheusRule.enabled=true"], "/metrics/prometheusRule/enabled"),
], ids=["pdb-with-one-replica", "service-monitor-without-metrics", "alerts-without-metrics"])
def test_values_that_would_silently_misbehave_are_refused(sets, words):
    proc = helm(*template_args((), sets), check=False)
    assert proc.returncode != 0 and words in proc.stderr, proc.stderr


def test_a_pdb_renders_with_several_replicas_and_the_pod_has_a_readiness_probe():
    docs = render(sets=["podDisruptionBudget.enabled=true", "replicaCount=2"])
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    (dep,) = by_kind(docs, "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["port"] == "healthz"
