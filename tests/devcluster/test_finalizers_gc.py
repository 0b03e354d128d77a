"""Finalizers and deletionTimestamp; owner-reference garbage collection (background, foreground,
orphan); namespace deletion."""
from __future__ import annotations

from tests.devcluster.helpers import widget, widgets_path


def cm(name: str, owner: dict | None = None, finalizers: list[str] | None = None) -> dict:
    meta: dict = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}]
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


# kube-controller-manager's garbage collector watches a kind from its next discovery resync (every 30 s):
# on the real control plane a kind just created may wait that long (the dev cluster collects at once).
GC_TIMEOUT = 60.0


def gone(status, body) -> bool:
    return status == 404


async def test_finalizers_hold_a_deletion_until_removed(http, ns):
    body = widget("fin")
    body["metadata"]["finalizers"] = ["test.ssvm.io/hold"]
    await http.post(widgets_path(ns), body)
    status, deleting = await http.delete(widgets_path(ns, "fin"))
    assert status == 200 and deleting["metadata"]["deletionTimestamp"]
    status, obj = await http.get(widgets_path(ns, "fin"))
    assert status == 200 and obj["metadata"]["deletionTimestamp"] == deleting["metadata"]["deletionTimestamp"]
    status, refused = await http.patch(widgets_path(ns, "fin"), {"metadata": {"finalizers": ["test.ssvm.io/hold", "new/one"]}})
    assert status == 422  # no new finalizers on an object being deleted
    status, _ = await http.patch(widgets_path(ns, "fin"), {"metadata": {"finalizers": None}})
    assert status == 200
    status, _ = await http.get(widgets_path(ns, "fin"))
    assert status == 404


async def test_delete_preconditions(http, ns):
    status, obj = await http.post(widgets_path(ns), widget("pre"))
    status, body = await http.delete(widgets_path(ns, "pre"), {"preconditions": {"uid": "not-it"}})
    assert status == 409
    status, body = await http.delete(widgets_path(ns, "pre"), {"preconditions": {"uid": obj["metadata"]["uid"]}})
    assert status == 200


async def test_background_garbage_collection(http, ns):
    status, owner = await http.post(widgets_path(ns), widget("owner"))
    await http.post(f"/api/v1/namespaces/{ns}/configmaps", cm("dep1", owner))
    await http.post(f"/api/v1/namespaces/{ns}/configmaps", cm("dep2", owner))
    await http.post(f"/api/v1/namespaces/{ns}/configmaps", cm("independent"))
    status, _ = await http.delete(widgets_path(ns, "owner"))
    assert status == 200
    await http.eventually(f"/api/v1/namespaces/{ns}/configmaps/dep1", gone, GC_TIMEOUT)
    await http.eventually(f"/api/v1/namespaces/{ns}/configmaps/dep2", gone, GC_TIMEOUT)
    status, _ = await http.get(f"/api/v1/namespaces/{ns}/configmaps/independent")
    assert status == 200


async def test_foreground_deletion_waits_for_dependents(http, ns):
    status, owner = await http.post(widgets_path(ns), widget("fg"))
    await http.post(f"/api/v1/namespaces/{ns}/configmaps", cm("held", owner, finalizers=["test/hold"]))
    status, deleting = await http.delete(widgets_path(ns, "fg"), {"propagationPolicy": "Foreground"})
    assert status == 200 and "foregroundDeletion" in deleting["metadata"]["finalizers"]
    # the dependent is being deleted, but its finalizer holds it, and so the owner stays too
    await http.eventually(f"/api/v1/namespaces/{ns}/configmaps/held",
                          lambda s, b: s == 200 and b["metadata"].get("deletionTimestamp"), GC_TIMEOUT)
    status, still = await http.get(widgets_path(ns, "fg"))
    assert status == 200
    await http.patch(f"/api/v1/namespaces/{ns}/configmaps/held", {"metadata": {"finalizers": None}})
    await http.eventually(widgets_path(ns, "fg"), gone, GC_TIMEOUT)


async def test_orphan_deletion_keeps_dependents(http, ns):
    status, owner = await http.post(widgets_path(ns), widget("orph"))
    await http.post(f"/api/v1/namespaces/{ns}/configmaps", cm("kept", owner))
    status, _ = await http.delete(widgets_path(ns, "orph"), propagationPolicy="Orphan")
    assert status == 200
    await http.eventually(widgets_path(ns, "orph"), gone, GC_TIMEOUT)
    status, kept = await http.get(f"/api/v1/namespaces/{ns}/configmaps/kept")
    assert status == 200 and "ownerReferences" not in kept["metadata"]


async def test_deleting_a_namespace_deletes_its_content(http, ns):
    await http.post(widgets_path(ns), widget("inside"))
    status, deleting = await http.delete(f"/api/v1/namespaces/{ns}")
    assert status == 200 and deleting["status"]["phase"] == "Terminating"
    await http.eventually(f"/api/v1/namespaces/{ns}", gone, GC_TIMEOUT)
    status, _ = await http.get(widgets_path(ns, "inside"))
    assert status == 404


async def test_namespace_status_subresource(http, ns):
    status, obj = await http.get(f"/api/v1/namespaces/{ns}/status")
    assert status == 200 and obj["kind"] == "Namespace" and obj["status"]["phase"] == "Active"
    assert obj["metadata"]["labels"]["kubernetes.io/metadata.name"] == ns
