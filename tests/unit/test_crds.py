"""The generated CRDs: up to date, valid for Kubernetes, structural, and shaped as kubectl users expect."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import celpy
import kubernetes_validate
import pytest
import yaml
from ssvm_operator.api.crd import KINDS, all_crds

from tests.manifests import hack_module

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_crds_folder_is_up_to_date_with_the_models():
    expected = hack_module("gen_crds").expected_files()
    on_disk = {p.name: p.read_text() for p in (ROOT / "crds").glob("*.yaml")}
    assert sorted(on_disk) == sorted(expected), "run: .venv/bin/python hack/gen_crds.py"
    for name, text in expected.items():
        assert on_disk[name] == text, f"crds/{name} is stale: run .venv/bin/python hack/gen_crds.py"


def test_crds_command_prints_what_crds_folder_holds():
    out = subprocess.run([sys.executable, "-m", "ssvm_operator.cli", "crds"], capture_output=True, text=True, check=True).stdout
    printed = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out)}
    on_disk = {d["metadata"]["name"]: d for p in (ROOT / "crds").glob("*.yaml") for d in yaml.safe_load_all(p.read_text())}
    assert printed == on_disk
    assert len(printed) == 4


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_crd_passes_kubernetes_validate(crd):
    kubernetes_validate.validate(crd, "1.37", strict=True)


def _walk(schema, path="schema"):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_crd_schema_is_structural_and_documented(crd):
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    forbidden = {"$ref", "anyOf", "oneOf", "allOf", "additionalProperties", "title", "const", "$defs"}
    for path, node in _walk(root):
        assert "type" in node, f"{path} has no type (not structural)"
        assert not forbidden & node.keys(), f"{path} uses {forbidden & node.keys()}"
        if path.count(".") <= 1 or path.startswith("schema.spec"):
            assert path == "schema.metadata" or node.get("description") or path.endswith("[]"), f"{path} has no description"
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key], f"{path}: map key {key} not required"


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_cel_rules_compile_and_strings_they_read_are_bounded(crd):
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    env = celpy.Environment()
    rules = 0
    for path, node in _walk(root):
        for entry in node.get("x-kubernetes-validations", []):
            env.compile(entry["rule"])  # raises on a syntax error
            assert entry.get("message"), f"{path}: rule without message"
            rules += 1
        if node.get("type") == "string" and node.get("x-kubernetes-validations"):
            assert "maxLength" in node or "pattern" in node or "oldSelf" in str(node), f"{path}: unbounded string under CEL"
    assert rules > 0


@pytest.mark.parametrize("info", KINDS, ids=lambda i: i.kind)
def test_crd_names_columns_status_and_conditions(info):
    crd = next(c for c in all_crds() if c["spec"]["names"]["kind"] == info.kind)
    names = crd["spec"]["names"]
    assert names["categories"] == ["cloud"]
    assert names["shortNames"] == [info.short]
    assert names["listKind"] == f"{info.kind}List"
    assert crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Ready", "Age"} <= columns
    assert columns & {"State", "Desired", "Running", "Zone", "Progress"}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) == {"type", "status", "reason", "lastTransitionTime"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert "observedGeneration" in status["properties"]
