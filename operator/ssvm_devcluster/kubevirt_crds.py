"""CustomResourceDefinitions for KubeVirt's and CDI's kinds and Multus' NetworkAttachmentDefinition, made
from the published JSON Schemas of those kinds (`kubevirt_schemas.json`, written by
hack/gen_kubevirt_crds.py from shared/schemas): a VirtualMachine the operator writes is pruned and
validated by the API server, the real one or the dev cluster, as on a cluster with KubeVirt installed.
"""
from __future__ import annotations

import functools
import json
import pathlib
from typing import Any

SCHEMAS_FILE = pathlib.Path(__file__).with_name("kubevirt_schemas.json")
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def structural(schema: Any) -> Any:
    """A published JSON Schema as a CRD's structural schema: no descriptions (they are not checked), no
    `additionalProperties: false` (a structural schema prunes unknown fields instead) and no `$schema`."""
    if isinstance(schema, list):
        return [structural(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("description", "$schema") or (key == "additionalProperties" and value is False):
            continue
        # Inside `properties` the keys are field names, not keywords: keep a field called "description".
        out[key] = {k: structural(v) for k, v in value.items()} if key == "properties" else structural(value)
    return out


# (group, version, kind, plural, short names, printer columns, schema file under shared/schemas)
KINDS: tuple[tuple[str, str, str, str, list[str], list[dict[str, Any]], str], ...] = (
    ("kubevirt.io", "v1", "VirtualMachine", "virtualmachines", ["vm", "vms"], [
        {"name": "Status", "type": "string", "jsonPath": ".status.printableStatus"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    ], "kubevirt.io/virtualmachine_v1.json"),
    ("kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances", ["vmi", "vmis"], [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "IP", "type": "string", "jsonPath": ".status.interfaces[0].ipAddress"},
        {"name": "NodeName", "type": "string", "jsonPath": ".status.nodeName"},
    ], "kubevirt.io/virtualmachineinstance_v1.json"),
    ("cdi.kubevirt.io", "v1beta1", "DataVolume", "datavolumes", ["dv", "dvs"], [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
    ], "cdi.kubevirt.io/datavolume_v1beta1.json"),
    ("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition", "network-attachment-definitions", ["net-attach-def"], [],
     "k8s.cni.cncf.io/networkattachmentdefinition_v1.json"),
)


@functools.cache
def _schemas() -> dict[str, Any]:
    return json.loads(SCHEMAS_FILE.read_text())


def crd(group: str, version: str, kind: str, plural: str, short: list[str], columns: list[dict[str, Any]],
        schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": {"app.kubernetes.io/part-of": "ssvm-devcluster"}},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                      "shortNames": short, "categories": ["all"]},
            "versions": [{
                "name": version, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": schema},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [_AGE, *columns],
            }],
        },
    }


def kubevirt_crds() -> list[dict[str, Any]]:
    schemas = _schemas()
    return [crd(group, version, kind, plural, short, columns, schemas[source])
            for group, version, kind, plural, short, columns, source in KINDS]
