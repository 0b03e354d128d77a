"""Server-set metadata: uid, creationTimestamp, resourceVersion (monotonic, lists too),
generation (spec changes only), generateName."""
from __future__ import annotations

from tests.devcluster.helpers import widget, widgets_path


async def test_create_stamps_uid_timestamp_resource_version_and_generation(http, ns):
    status, a = await http.post(widgets_path(ns), widget("a"))
    assert status == 201, a
    meta = a["metadata"]
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1 and meta["namespace"] == ns
    status, b = await http.post(widgets_path(ns), widget("b"))
    assert int(b["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert b["metadata"]["uid"] != meta["uid"]
    status, listed = await http.get(widgets_path(ns))
    assert listed["kind"] == "WidgetList" and listed["apiVersion"] == "test.ssvm.io/v1alpha1"
    assert int(listed["metadata"]["resourceVersion"]) >= int(b["metadata"]["resourceVersion"])


async def test_client_supplied_server_fields_are_ignored(http, ns):
    body = widget("c")
    body["metadata"].update(uid="mine", resourceVersion="999999", generation=7, creationTimestamp="2000-01-01T00:00:00Z")
    status, refused = await http.post(widgets_path(ns), body)
    assert status == 500 and refused["message"] == "resourceVersion should not be set on objects to be created"
    del body["metadata"]["resourceVersion"]
    status, c = await http.post(widgets_path(ns), body)
    assert status == 201
    assert c["metadata"]["uid"] != "mine" and c["metadata"]["generation"] == 1
    assert not c["metadata"]["creationTimestamp"].startswith("2000")


async def test_generation_bumps_on_spec_changes_only(http, ns):
    await http.post(widgets_path(ns), widget("g"))
    path = widgets_path(ns, "g")
    status, obj = await http.patch(path, {"metadata": {"labels": {"x": "y"}, "annotations": {"a": "b"}}})
    assert status == 200 and obj["metadata"]["generation"] == 1
    rv_after_meta = int(obj["metadata"]["resourceVersion"])
    status, obj = await http.patch(widgets_path(ns, "g", "status"), {"status": {"observedGeneration": 1}})
    assert status == 200 and obj["metadata"]["generation"] == 1
    assert int(obj["metadata"]["resourceVersion"]) > rv_after_meta
    status, obj = await http.patch(path, {"spec": {"size": 2}})
    assert obj["metadata"]["generation"] == 2
    status, obj = await http.patch(path, {"spec": {"size": 2}})  # no change: nothing bumps
    assert obj["metadata"]["generation"] == 2
    status, again = await http.get(path)
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


async def test_generate_name(http, ns):
    body = widget("")
    body["metadata"] = {"generateName": "gen-"}
    status, first = await http.post(widgets_path(ns), body)
    status2, second = await http.post(widgets_path(ns), body)
    assert status == status2 == 201
    assert first["metadata"]["name"].startswith("gen-") and len(first["metadata"]["name"]) == len("gen-") + 5
    assert first["metadata"]["name"] != second["metadata"]["name"]
