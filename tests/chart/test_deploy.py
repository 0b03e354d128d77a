"""deploy/ssvm-operator.yaml: the chart rendered for kubectl users, up to date and valid."""
from __future__ import annotations

import kubernetes_validate
import yaml

from tests.manifests import hack_module

from .helm import ROOT


def test_plain_manifests_are_up_to_date_with_the_chart():
    gen = hack_module("gen_deploy")
    assert gen.OUTPUT.read_text() == gen.render(), "run .venv/bin/python hack/gen_deploy.py"


def test_plain_manifests_are_valid_and_complete():
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "ssvm-operator.yaml").read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace" and kinds.count("CustomResourceDefinition") == 4
    assert kinds.index("CustomResourceDefinition") < kinds.index("Deployment")
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"} <= set(kinds)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37", strict=True)
        assert "helm.sh/chart" not in (doc["metadata"].get("labels") or {})
    crds = {d["metadata"]["name"]: d for d in docs if d["kind"] == "CustomResourceDefinition"}
    on_disk = {d["metadata"]["name"]: d for p in (ROOT / "crds").glob("*.yaml") for d in yaml.safe_load_all(p.read_text())}
    assert crds == on_disk
