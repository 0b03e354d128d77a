"""The KubeVirt, CDI and Multus CRDs made from the published schemas: fresh, structural, and keeping every
field of the VirtualMachines the operator builds on both control planes (a pruned field would be a
manifest the real KubeVirt would not see)."""
from __future__ import annotations

import json
import pathlib

import yaml

from ssvm_devcluster.kubevirt_crds import SCHEMAS_FILE, kubevirt_crds, structural
from ssvm_operator.commands.render import admit_documents, load_documents, render_objects
from tests.manifests import ROOT, hack_module


def test_the_generated_schemas_are_fresh():
    assert SCHEMAS_FILE.read_text() == hack_module("gen_kubevirt_crds").render(), \
        "stale: run .venv/bin/python hack/gen_kubevirt_crds.py"


def test_structural_drops_descriptions_and_closed_objects_but_keeps_fields_and_maps():
    schema = {"$schema": "x", "type": "object", "description": "d", "additionalProperties": False, "properties": {
        "description": {"type": "string", "description": "a field named description"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}
    assert structural(schema) == {"type": "object", "properties": {
        "description": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}


def test_each_crd_names_its_kind_and_carries_the_schema():
    kinds = {c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in kubevirt_crds()}
    assert set(kinds) == {"VirtualMachine", "VirtualMachineInstance", "DataVolume", "NetworkAttachmentDefinition"}
    assert "runStrategy" in kinds["VirtualMachine"]["properties"]["spec"]["properties"]


def test_the_api_server_keeps_every_field_of_the_operators_vms(cluster, tmp_path: pathlib.Path):
    inputs = admit_documents(load_documents([str(ROOT / "examples")]), "default")
    objects, _ = render_objects(inputs)
    vms = [o for o in objects if o["kind"] == "VirtualMachine"]
    assert len(vms) >= 3
    namespace = cluster.namespace("kv")
    for vm in vms:
        vm["metadata"].pop("ownerReferences", None)   # their uids are placeholders
        vm["metadata"]["namespace"] = namespace
        proc = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=yaml.safe_dump(vm), check=False)
        assert proc.returncode == 0, proc.stderr
        stored = json.loads(proc.stdout)
        assert _missing(vm, stored) == [], f"{vm['metadata']['name']}: fields pruned or changed by the API server"


def test_a_misspelt_vm_field_is_refused_or_pruned_and_a_wrong_type_refused(cluster):
    namespace = cluster.namespace("kv")
    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "v", "namespace": namespace},
          "spec": {"runStrategy": "Always", "runStrategyy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}}
    strict = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(vm), check=False)
    assert strict.returncode != 0 and 'unknown field "spec.runStrategyy"' in strict.stderr, strict.stderr
    ignored = cluster.kubectl("create", "--dry-run=server", "--validate=false", "-o", "json", "-f", "-", input=yaml.safe_dump(vm))
    stored = json.loads(ignored.stdout)
    assert "runStrategyy" not in stored["spec"] and stored["spec"]["runStrategy"] == "Always"
    del vm["spec"]["runStrategyy"]
    vm["spec"]["template"]["spec"]["domain"]["cpu"] = {"cores": "many"}
    proc = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(vm), check=False)
    assert proc.returncode != 0 and "spec.template.spec.domain.cpu.cores" in proc.stderr, proc.stderr


def _missing(sent, stored, path: str = "") -> list[str]:
    """Paths of `sent` that `stored` lacks or holds with another value (what the server added is fine)."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path]
        return [p for k, v in sent.items() for p in (_missing(v, stored[k], f"{path}.{k}") if k in stored else [f"{path}.{k}"])]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [path]
        return [p for i, (a, b) in enumerate(zip(sent, stored)) for p in _missing(a, b, f"{path}[{i}]")]
    return [] if sent == stored else [path]
