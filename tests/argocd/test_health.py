"""Argo CD health checks of Zone, ImageStore and SecondaryStorageVM, run in Lua 5.1 over health_test.yaml tables."""
from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from tests.manifests import ROOT, crd_schemas, hack_module

from .lua import run_health

ARGOCD = ROOT / "argocd"
CUSTOM = ARGOCD / "resource_customizations" / "ssvm.io"
SCHEMAS = ROOT.parent / "shared" / "schemas"
KINDS = ("Zone", "ImageStore", "SecondaryStorageVM", "Template")


def _cases():
    for kind in KINDS:
        table = yaml.safe_load((CUSTOM / kind / "health_test.yaml").read_text())
        for case in table["tests"]:
            yield pytest.param(kind, case, id=f"{kind}:{case['inputPath']}")


def test_generated_files_are_up_to_date():
    for path, text in hack_module("gen_argocd").expected_files().items():
        assert path.exists() and path.read_text() == text, f"{path} is stale: run .venv/bin/python hack/gen_argocd.py"


def test_every_testdata_file_is_in_a_table_and_every_status_is_covered():
    for kind in KINDS:
        listed = {c["inputPath"] for c in yaml.safe_load((CUSTOM / kind / "health_test.yaml").read_text())["tests"]}
        on_disk = {f"testdata/{p.name}" for p in (CUSTOM / kind / "testdata").glob("*.yaml")}
        assert listed == on_disk
        statuses = {c["healthStatus"]["status"] for c in yaml.safe_load((CUSTOM / kind / "health_test.yaml").read_text())["tests"]}
        # only an SSVM can be stopped as its spec asks: Suspended, as Argo CD's own KubeVirt check says of a stopped VM
        assert statuses == {"Healthy", "Progressing", "Degraded"} | ({"Suspended"} if kind == "SecondaryStorageVM" else set())


@pytest.mark.parametrize(("kind", "case"), list(_cases()))
def test_health_script(kind, case):
    script = (CUSTOM / kind / "health.lua").read_text()
    obj = yaml.safe_load((CUSTOM / kind / case["inputPath"]).read_text())
    assert run_health(script, obj) == case["healthStatus"]


@pytest.mark.parametrize("kind", KINDS)
def test_testdata_objects_are_valid_for_the_crds(kind):
    schema = crd_schemas()[kind]
    for path in (CUSTOM / kind / "testdata").glob("*.yaml"):
        obj = yaml.safe_load(path.read_text())
        assert obj["kind"] == kind
        jsonschema.validate({k: v for k, v in obj.items() if k in ("spec", "status")},
                            {**schema, "properties": {k: schema["properties"][k] for k in ("spec", "status")}})


@pytest.mark.parametrize("kind", KINDS)
def test_each_terminal_reason_degrades_and_others_progress(kind):
    script = (CUSTOM / kind / "health.lua").read_text()
    terminal = hack_module("gen_argocd").TERMINAL_REASONS[kind]
    for reason, expected in [*((r, "Degraded") for r in terminal), ("SomethingTransient", "Progressing")]:
        obj = {"metadata": {"name": "x", "generation": 1},
               "status": {"observedGeneration": 1, "conditions": [
                   {"type": "Ready", "status": "False", "reason": reason, "message": "m"}]}}
        assert run_health(script, obj)["status"] == expected, reason


def test_argocd_cm_holds_each_script_under_argo_cd_key():
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    for kind in KINDS:
        assert cm["data"][f"resource.customizations.health.ssvm.io_{kind}"] == (CUSTOM / kind / "health.lua").read_text()
    app_check = cm["data"]["resource.customizations.health.argoproj.io_Application"]
    assert run_health(app_check, {"status": {"health": {"status": "Healthy"}}})["status"] == "Healthy"
    assert run_health(app_check, {})["status"] == "Progressing"


def _applications():
    docs = []
    for path in [ARGOCD / "application.yaml", *sorted((ARGOCD / "apps").glob("*.yaml"))]:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_applications_validate_against_the_argo_cd_schema():
    schema = json.loads((SCHEMAS / "argoproj.io" / "application_v1alpha1.json").read_text())
    apps = _applications()
    assert len(apps) == 4
    for app in apps:
        jsonschema.validate(app, schema)


def test_sync_waves_apply_crds_then_operator_then_resources():
    children = {a["metadata"]["name"]: a for a in _applications() if a["metadata"]["name"] != "ssvm"}
    wave = {name: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for name, a in children.items()}
    assert wave["ssvm-crds"] < wave["ssvm-operator"] < wave["ssvm-resources"]
    assert children["ssvm-crds"]["spec"]["source"]["path"] == "crds"
    operator = children["ssvm-operator"]["spec"]["source"]
    assert operator["path"] == "charts/ssvm-operator" and operator["helm"]["skipCrds"] is True
    for app in children.values():
        assert (ROOT / app["spec"]["source"]["path"]).is_dir()


def test_operator_application_values_pass_the_chart_schema():
    chart = ROOT / "charts" / "ssvm-operator"
    schema = json.loads((chart / "values.schema.json").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())
    (operator,) = [a for a in _applications() if a["metadata"]["name"] == "ssvm-operator"]
    for key, value in operator["spec"]["source"]["helm"]["valuesObject"].items():
        values[key] = {**values[key], **value} if isinstance(value, dict) else value
    jsonschema.validate(values, schema)


def test_the_example_application_syncs_no_secret_from_git():
    import fnmatch

    app = yaml.safe_load((ROOT / "argocd" / "apps" / "02-resources.yaml").read_text())
    source = app["spec"]["source"]
    exclude = (source.get("directory") or {}).get("exclude", "")
    synced = [p for p in (ROOT / source["path"]).glob("*.yaml") if not fnmatch.fnmatch(p.name, exclude)]
    kinds = {d["kind"] for p in synced for d in yaml.safe_load_all(p.read_text()) if d}
    assert synced and "Zone" in kinds and "Secret" not in kinds
