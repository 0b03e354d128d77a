"""Minimal CustomResourceDefinitions for KubeVirt's and CDI's kinds, so the dev cluster serves
`kubevirt.io/v1` VirtualMachines and VirtualMachineInstances, `cdi.kubevirt.io/v1beta1`
DataVolumes and Multus NetworkAttachmentDefinitions (schemas preserve unknown fields: the KubeVirt simulator stands in for the webhooks).
"""
from __future__ import annotations

from typing import Any

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _crd(group: str, version: str, kind: str, plural: str, short: list[str], columns: list[dict[str, Any]]) -> dict[str, Any]:
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
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [_AGE, *columns],
            }],
        },
    }


def kubevirt_crds() -> list[dict[str, Any]]:
    return [
        _crd("kubevirt.io", "v1", "VirtualMachine", "virtualmachines", ["vm", "vms"], [
            {"name": "Status", "type": "string", "jsonPath": ".status.printableStatus"},
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        ]),
        _crd("kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances", ["vmi", "vmis"], [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "IP", "type": "string", "jsonPath": ".status.interfaces[0].ipAddress"},
            {"name": "NodeName", "type": "string", "jsonPath": ".status.nodeName"},
        ]),
        _crd("cdi.kubevirt.io", "v1beta1", "DataVolume", "datavolumes", ["dv", "dvs"], [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
        ]),
        _crd("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition", "network-attachment-definitions", ["net-attach-def"], []),
    ]
