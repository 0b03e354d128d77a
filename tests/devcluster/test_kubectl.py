"""Real kubectl against the dev cluster: the project's CRDs and examples, and the test CRD."""
from __future__ import annotations

import json
import pathlib

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def test_project_crds_and_examples_round_trip(kubectl, ns):
    out = kubectl("apply", "-f", str(REPO / "crds")).stdout
    assert "zones.ssvm.io" in out and "imagestores.ssvm.io" in out and "secondarystoragevms.ssvm.io" in out
    kubectl("wait", "--for=condition=Established", "--timeout=20s",
            "crd/zones.ssvm.io", "crd/imagestores.ssvm.io", "crd/secondarystoragevms.ssvm.io")
    out = kubectl("apply", "-n", ns, "-f", str(REPO / "examples")).stdout
    assert "zone.ssvm.io/zone1 created" in out and "secondarystoragevm.ssvm.io/zone1-extra-executor created" in out

    # short names, one kind each and all three at once; the `cloud` category
    zones = kubectl("get", "-n", ns, "zone", "-o", "name").stdout.split()
    assert sorted(zones) == ["zone.ssvm.io/zone1", "zone.ssvm.io/zone2"]
    stores = kubectl("get", "-n", ns, "imgstore", "-o", "name").stdout.split()
    assert "imagestore.ssvm.io/zone1-nfs-a" in stores
    assert kubectl("get", "-n", ns, "ssvm", "-o", "name").stdout.split() == ["secondarystoragevm.ssvm.io/zone1-extra-executor"]
    table = kubectl("get", "-n", ns, "zone,imgstore,ssvm").stdout
    assert "zone.ssvm.io/zone2" in table and "imagestore.ssvm.io/zone2-nfs" in table
    cloud = kubectl("get", "-n", ns, "cloud", "-o", "name").stdout.split()
    assert {"zone.ssvm.io/zone1", "imagestore.ssvm.io/zone2-nfs", "secondarystoragevm.ssvm.io/zone1-extra-executor"} <= set(cloud)
    # printer columns come from the CRD (server-side Table)
    header = kubectl("get", "-n", ns, "zone").stdout.splitlines()[0].split()
    assert header[0] == "NAME" and "READY" in header and "AGE" in header

    # -o yaml shows server-set fields and schema defaults; -l selects
    doc = yaml.safe_load(kubectl("get", "-n", ns, "ssvm", "zone1-extra-executor", "-o", "yaml").stdout)
    assert doc["metadata"]["uid"] and doc["metadata"]["generation"] == 1 and doc["spec"]["zoneRef"] == "zone1"
    selected = kubectl("get", "-n", ns, "ssvm", "-l", "ssvm.io/zone=zone1", "-o", "name").stdout.split()
    assert selected == ["secondarystoragevm.ssvm.io/zone1-extra-executor"]
    assert kubectl("get", "-n", ns, "ssvm", "-l", "ssvm.io/zone=zone9", "-o", "name").stdout.split() == []

    # a status patch, then kubectl wait on the condition
    status = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Tested", "message": "by the test",
                                         "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]}}
    kubectl("patch", "-n", ns, "zone", "zone2", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    out = kubectl("wait", "-n", ns, "--for=condition=Ready", "--timeout=20s", "zone/zone2").stdout
    assert "zone.ssvm.io/zone2 condition met" in out
    assert "True" in kubectl("get", "-n", ns, "zone", "zone2").stdout.splitlines()[1].split()

    # a refused bad object shows a readable error that names the field
    bad = {"apiVersion": "ssvm.io/v1alpha1", "kind": "ImageStore", "metadata": {"name": "bad-store"},
           "spec": {"zoneRef": "zone1", "url": "ftp://nowhere"}}
    proc = kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0
    assert 'The ImageStore "bad-store" is invalid: spec.url: ' in proc.stderr, proc.stderr

    # delete by file and by name
    kubectl("delete", "-n", ns, "-f", str(REPO / "examples" / "secondarystoragevm.yaml"))
    out = kubectl("delete", "-n", ns, "zone", "zone1").stdout
    assert 'zone.ssvm.io "zone1" deleted' in out
    assert kubectl("get", "-n", ns, "zone", "-o", "name").stdout.split() == ["zone.ssvm.io/zone2"]
    proc = kubectl("get", "-n", ns, "ssvm", "zone1-extra-executor", check=False)
    assert proc.returncode != 0 and "NotFound" in proc.stderr


def test_kubectl_with_the_test_crd_and_builtins(kubectl, ns, widgets_crd):
    kubectl("apply", "-f", str(FIXTURES / "widgets-crd.yaml"))
    manifest = {"apiVersion": "test.ssvm.io/v1alpha1", "kind": "Widget",
                "metadata": {"name": "kw", "labels": {"app": "x"}}, "spec": {"size": 2}}
    assert "widget.test.ssvm.io/kw created" in kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest)).stdout
    manifest["spec"]["size"] = 3
    assert "configured" in kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest)).stdout
    assert "unchanged" in kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest)).stdout
    row = kubectl("get", "-n", ns, "wdg", "kw", "--no-headers").stdout.split()
    assert row[:2] == ["kw", "3"]
    # unknown fields: kubectl asks for strict validation and shows the server's message
    manifest["spec"]["colour"] = "red"
    proc = kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest), check=False)
    assert proc.returncode != 0 and 'unknown field "spec.colour"' in proc.stderr
    # built-ins through kubectl's typed clients (protobuf bodies) and strategic merge apply
    kubectl("create", "-n", ns, "configmap", "cfg", "--from-literal=a=1")
    kubectl("create", "-n", ns, "secret", "generic", "sec", "--from-literal=password=not-a-real-one")
    cmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "labels": {"k": "v"}}, "data": {"a": "1"}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(cmap))
    cmap["data"] = {"b": "2"}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(cmap))
    got = json.loads(kubectl("get", "-n", ns, "configmap", "applied", "-o", "json").stdout)
    assert got["data"] == {"b": "2"}
    assert json.loads(kubectl("get", "-n", ns, "secret", "sec", "-o", "json").stdout)["data"]["password"]
    assert kubectl("get", "-n", ns, "cm", "-l", "k=v", "-o", "name").stdout.split() == ["configmap/applied"]
    kubectl("label", "-n", ns, "wdg", "kw", "extra=yes")
    kubectl("annotate", "-n", ns, "wdg", "kw", "note=hello")
    got = json.loads(kubectl("get", "-n", ns, "wdg", "kw", "-o", "json").stdout)
    assert got["metadata"]["labels"] == {"app": "x", "extra": "yes"} and got["metadata"]["annotations"]["note"] == "hello"
    kubectl("delete", "-n", ns, "wdg", "kw")
    assert kubectl("get", "-n", ns, "wdg", "-o", "name").stdout.strip() == ""
