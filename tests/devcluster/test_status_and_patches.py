"""The status subresource, and every way to write: PUT, merge patch, JSON patch, strategic merge
patch (built-ins, as kubectl sends it), apply patch."""
from __future__ import annotations

import yaml

from tests.devcluster.helpers import widget, widgets_path


async def test_main_endpoint_ignores_status(http, ns):
    body = widget("s1")
    body["status"] = {"observedGeneration": 5}
    status, obj = await http.post(widgets_path(ns), body)
    assert status == 201 and "status" not in obj
    status, obj = await http.patch(widgets_path(ns, "s1"), {"spec": {"size": 2}, "status": {"observedGeneration": 9}})
    assert status == 200 and "status" not in obj and obj["spec"]["size"] == 2
    obj["status"] = {"observedGeneration": 9}
    status, obj = await http.put(widgets_path(ns, "s1"), obj)
    assert status == 200 and "status" not in obj


async def test_status_endpoint_changes_only_status(http, ns):
    await http.post(widgets_path(ns), widget("s2", size=1))
    status, obj = await http.get(widgets_path(ns, "s2"))
    obj["spec"]["size"] = 4
    obj["metadata"]["labels"] = {"sneaky": "yes"}
    obj["status"] = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}
    status, put = await http.put(widgets_path(ns, "s2", "status"), obj)
    assert status == 200, put
    assert put["spec"]["size"] == 1 and "labels" not in put["metadata"]
    assert put["status"]["conditions"][0]["type"] == "Ready" and put["metadata"]["generation"] == 1
    status, patched = await http.patch(widgets_path(ns, "s2", "status"), {"spec": {"size": 9}, "status": {"observedGeneration": 2}})
    assert patched["spec"]["size"] == 1 and patched["status"]["observedGeneration"] == 2
    # the status is validated against the schema too
    status, bad = await http.patch(widgets_path(ns, "s2", "status"), {"status": {"conditions": [{"type": "Ready", "status": "Maybe"}]}})
    assert status == 422 and bad["details"]["causes"][0]["field"] == "status.conditions[0].status"


async def test_json_patch_and_merge_patch(http, ns):
    await http.post(widgets_path(ns), widget("p1", tags=["a", "b"]))
    ops = [{"op": "replace", "path": "/spec/size", "value": 3}, {"op": "add", "path": "/spec/tags/-", "value": "c"},
           {"op": "remove", "path": "/spec/tags/0"}]
    status, obj = await http.patch(widgets_path(ns, "p1"), ops, ctype="application/json-patch+json")
    assert status == 200 and obj["spec"]["size"] == 3 and obj["spec"]["tags"] == ["b", "c"]
    status, obj = await http.patch(widgets_path(ns, "p1"), {"spec": {"tags": None, "extra": {"k": {"n": 1}}}})
    assert "tags" not in obj["spec"] and obj["spec"]["extra"] == {"k": {"n": 1}}
    status, body = await http.patch(widgets_path(ns, "p1"), [{"op": "remove", "path": "/spec/nothing"}],
                                    ctype="application/json-patch+json")
    assert status == 422


async def test_strategic_merge_patch_on_builtins_and_refusal_on_custom_resources(http, ns):
    # a Deployment (a Pod's containers may not change after creation on a real server)
    labels = {"app": "smp"}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                      "containers": [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                                     {"name": "b", "image": "b:1"}]}}}}
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/d"
    status, created = await http.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deployment)
    assert status == 201, created
    smp = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                                                         {"name": "b", "$patch": "delete"}]}}},
           "metadata": {"finalizers": ["x/y"]}}
    status, obj = await http.patch(path, smp, ctype="application/strategic-merge-patch+json")
    assert status == 200, obj
    containers = obj["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a"] and containers[0]["image"] == "a:2"
    # apimachinery's element order: an item new to the list goes before the server's other items
    assert containers[0]["env"] == [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]
    assert obj["metadata"]["finalizers"] == ["x/y"]
    status, obj = await http.patch(path, {"metadata": {"finalizers": ["a/b"]}}, ctype="application/strategic-merge-patch+json")
    assert obj["metadata"]["finalizers"] == ["a/b", "x/y"]
    status, obj = await http.patch(path, {"metadata": {"finalizers": ["x/y", "c/d"]}}, ctype="application/strategic-merge-patch+json")
    assert obj["metadata"]["finalizers"] == ["a/b", "x/y", "c/d"]   # the patch's order where both lists know the items
    await http.patch(path, {"metadata": {"finalizers": None}})
    await http.post(widgets_path(ns), widget("smp"))
    status, body = await http.patch(widgets_path(ns, "smp"), {"spec": {"size": 2}}, ctype="application/strategic-merge-patch+json")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


async def test_apply_patch_creates_then_merges_list_maps(http, ns):
    applied = widget("ap", size=2)
    status, obj = await http.patch(widgets_path(ns, "ap"), yaml.safe_dump(applied), ctype="application/apply-patch+yaml",
                                   fieldManager="test")
    assert status == 201 and obj["spec"]["size"] == 2
    status, obj = await http.patch(widgets_path(ns, "ap", "status"),
                                   {"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]}})
    status, obj = await http.patch(widgets_path(ns, "ap", "status"),
                                   yaml.safe_dump({**applied, "status": {"conditions": [{"type": "B", "status": "False"}]}}),
                                   ctype="application/apply-patch+yaml", fieldManager="test", force="true")
    # force: B's status belongs to the merge patch's manager (the dev cluster keeps no field owners; docs/devcluster.md)
    assert status == 200, obj
    assert obj["status"]["conditions"] == [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]


async def test_put_replaces_the_object(http, ns):
    status, obj = await http.post(widgets_path(ns), widget("put", size=1, tags=["t"]))
    obj["spec"] = {"size": 2}
    status, new = await http.put(widgets_path(ns, "put"), obj)
    assert status == 200 and "tags" not in new["spec"] and new["spec"]["maxSize"] == 5  # defaulted again
    assert new["metadata"]["uid"] == obj["metadata"]["uid"]
    assert new["metadata"]["creationTimestamp"] == obj["metadata"]["creationTimestamp"]
