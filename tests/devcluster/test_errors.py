"""Conflicts and errors in the `Status` shape: 404, 409 AlreadyExists, 409 stale writes,
422 on a failed JSON-patch `test` op, 422 Invalid with causes."""
from __future__ import annotations

from tests.devcluster.helpers import widget, widgets_path


def assert_status(body: dict, code: int, reason: str) -> None:
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure", body
    assert body["code"] == code and body["reason"] == reason, body


async def test_not_found(http, ns):
    status, body = await http.get(widgets_path(ns, "missing"))
    assert status == 404
    assert_status(body, 404, "NotFound")
    assert body["message"] == 'widgets.test.ssvm.io "missing" not found'
    assert body["details"] == {"name": "missing", "group": "test.ssvm.io", "kind": "widgets"}
    status, body = await http.get("/apis/nothing.example/v1/things")
    assert (status, body) == (404, "404 page not found\n")   # no group: kube-apiserver's plain-text fall-through
    status, body = await http.get("/apis/coordination.k8s.io/v1/things")
    assert status == 404 and body["kind"] == "Status"      # a built-in group: a Status


async def test_already_exists(http, ns):
    assert (await http.post(widgets_path(ns), widget("dup")))[0] == 201
    status, body = await http.post(widgets_path(ns), widget("dup"))
    assert status == 409
    assert_status(body, 409, "AlreadyExists")


async def test_update_with_a_stale_resource_version_conflicts(http, ns):
    status, obj = await http.post(widgets_path(ns), widget("u"))
    stale = dict(obj)
    status, fresh = await http.patch(widgets_path(ns, "u"), {"spec": {"size": 2}})
    status, body = await http.put(widgets_path(ns, "u"), {**stale, "spec": {"size": 3}})
    assert status == 409
    assert_status(body, 409, "Conflict")
    assert "the object has been modified" in body["message"]
    status, ok = await http.put(widgets_path(ns, "u"), {**fresh, "spec": {"size": 3}})
    assert status == 200 and ok["spec"]["size"] == 3
    # a merge patch that carries a stale resourceVersion is a conflict too
    status, body = await http.patch(widgets_path(ns, "u"), {"metadata": {"resourceVersion": stale["metadata"]["resourceVersion"]}})
    assert status == 409


async def test_update_of_a_custom_resource_requires_a_resource_version(http, ns):
    status, obj = await http.post(widgets_path(ns), widget("norv"))
    del obj["metadata"]["resourceVersion"]
    status, body = await http.put(widgets_path(ns, "norv"), obj)
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


async def test_json_patch_with_a_stale_test_op_is_refused(http, ns):
    status, obj = await http.post(widgets_path(ns), widget("jp"))
    rv = obj["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
           {"op": "add", "path": "/metadata/finalizers", "value": ["x.test/f"]}]
    status, patched = await http.patch(widgets_path(ns, "jp"), ops, ctype="application/json-patch+json")
    assert status == 200 and patched["metadata"]["finalizers"] == ["x.test/f"]
    # the same patch again: its test op now holds a stale resourceVersion (kube-apiserver: 422, kopf relies on it)
    status, body = await http.patch(widgets_path(ns, "jp"), ops, ctype="application/json-patch+json")
    assert status == 422
    assert_status(body, 422, "Invalid")
    status, obj = await http.get(widgets_path(ns, "jp"))
    assert obj["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]


async def test_invalid_object_lists_its_causes(http, ns):
    status, body = await http.post(widgets_path(ns), widget("bad", size=-1, shape="oval"))
    assert status == 422
    assert_status(body, 422, "Invalid")
    fields = {c["field"]: c for c in body["details"]["causes"]}
    assert set(fields) == {"spec.size", "spec.shape", "<nil>"}   # <nil>: the CEL rules were not checked
    assert fields["spec.shape"]["reason"] == "FieldValueNotSupported"
    assert body["details"]["kind"] == "Widget" and body["details"]["name"] == "bad"
    assert body["message"].startswith('Widget.test.ssvm.io "bad" is invalid: [')


async def test_namespace_must_exist(http):
    status, body = await http.post(widgets_path("no-such-ns"), widget("x"))
    assert status == 404 and body["message"] == 'namespaces "no-such-ns" not found'
