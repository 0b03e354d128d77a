"""Discovery documents, including resources that appear and disappear with their CRDs."""
from __future__ import annotations

import copy


def gadget_crd(group: str) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"gadgets.{group}"},
            "spec": {"group": group, "scope": "Cluster",
                     "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gdg"],
                               "categories": ["cloud"]},
                     "versions": [{"name": "v1beta1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                                   "subresources": {"status": {}}}]}}


async def test_core_and_builtin_groups_are_discoverable(http):
    status, api = await http.get("/api")
    assert status == 200 and api["kind"] == "APIVersions" and api["versions"] == ["v1"]
    status, core = await http.get("/api/v1")
    names = {r["name"]: r for r in core["resources"]}
    for plural in ("namespaces", "events", "secrets", "configmaps"):
        assert plural in names, plural
    assert names["namespaces"]["namespaced"] is False and names["events"]["namespaced"] is True
    assert "namespaces/status" in names
    status, groups = await http.get("/apis")
    assert groups["kind"] == "APIGroupList"
    group_names = {g["name"] for g in groups["groups"]}
    assert {"apiextensions.k8s.io", "coordination.k8s.io", "events.k8s.io"} <= group_names
    status, crds = await http.get("/apis/apiextensions.k8s.io/v1")
    assert "customresourcedefinitions" in {r["name"] for r in crds["resources"]}
    status, leases = await http.get("/apis/coordination.k8s.io/v1")
    assert [r["kind"] for r in leases["resources"]] == ["Lease"]
    status, version = await http.get("/version")
    assert status == 200 and version["major"] == "1"


async def test_custom_resources_appear_and_disappear_with_their_crd(http):
    group = "disco.test.ssvm.io"
    status, body = await http.get(f"/apis/{group}")
    assert (status, body) == (404, "404 page not found\n")   # plain text for a group no one serves
    status, body = await http.get("/api/v1/gadgets")
    assert status == 404 and body["kind"] == "Status" and body["message"] == "the server could not find the requested resource"
    status, crd = await http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", gadget_crd(group))
    assert status == 201, crd
    # created without conditions; Established a moment later, by a write of its own
    assert crd["status"]["conditions"] is None and crd["status"]["acceptedNames"] == {"plural": "", "kind": ""}
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}"
    _, crd = await http.eventually(path, lambda s, b: {c["type"]: c["status"] for c in b["status"].get("conditions") or []}
                                   == {"NamesAccepted": "True", "Established": "True"})
    assert crd["status"]["acceptedNames"]["kind"] == "Gadget" and crd["status"]["acceptedNames"]["listKind"] == "GadgetList"
    await http.eventually(f"/apis/{group}", lambda s, b: s == 200)

    status, doc = await http.get(f"/apis/{group}")
    assert status == 200 and doc["preferredVersion"]["version"] == "v1beta1"
    status, groups = await http.get("/apis")
    assert group in {g["name"] for g in groups["groups"]}
    status, rl = await http.get(f"/apis/{group}/v1beta1")
    entries = {r["name"]: r for r in rl["resources"]}
    assert entries["gadgets"]["kind"] == "Gadget" and entries["gadgets"]["namespaced"] is False
    assert entries["gadgets"]["shortNames"] == ["gdg"] and entries["gadgets"]["categories"] == ["cloud"]
    assert "gadgets/status" in entries
    # the OpenAPI index lists it once kube-apiserver's OpenAPI controller has caught up
    await http.eventually("/openapi/v3", lambda s, b: f"apis/{group}/v1beta1" in b["paths"])

    status, refused = await http.post(f"/apis/{group}/v1beta1/gadgets", {"metadata": {"name": "g1"}, "spec": {"x": 1}})
    assert status == 400 and "Object 'Kind' is missing" in refused["message"]   # a custom resource must name its kind
    status, created = await http.post(f"/apis/{group}/v1beta1/gadgets", {"apiVersion": f"{group}/v1beta1", "kind": "Gadget",
                                                                         "metadata": {"name": "g1"}, "spec": {"x": 1}})
    assert status == 201, created

    status, _ = await http.delete(path)
    assert status == 200
    # the CRD's instances go first (its cleanup finalizer), then the CRD and its paths
    await http.eventually(path, lambda s, b: s == 404)
    await http.eventually(f"/apis/{group}", lambda s, b: s == 404)
    status, _ = await http.get(f"/apis/{group}/v1beta1/gadgets/g1")
    assert status == 404
    status, groups = await http.get("/apis")
    assert group not in {g["name"] for g in groups["groups"]}


async def test_a_crd_with_a_wrong_name_is_refused(http):
    crd = copy.deepcopy(gadget_crd("wrong.test.ssvm.io"))
    crd["metadata"]["name"] = "nope.wrong.test.ssvm.io"
    status, body = await http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
