"""List kinds, label and field selectors, namespaced and cluster-wide lists, paging."""
from __future__ import annotations

from tests.devcluster.helpers import WIDGETS, widget, widgets_path


async def make(http, ns):
    for name, labels in [("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db", "env": "prod"}),
                         ("c", {"tier": "web"}), ("d", {})]:
        status, _ = await http.post(widgets_path(ns), widget(name, labels=labels))
        assert status == 201


async def names(http, path, **params):
    status, body = await http.get(path, **params)
    assert status == 200, body
    return [o["metadata"]["name"] for o in body["items"]]


async def test_label_selectors(http, ns):
    await make(http, ns)
    path = widgets_path(ns)
    assert await names(http, path, labelSelector="tier=web") == ["a", "c"]
    assert await names(http, path, labelSelector="tier==web,env=prod") == ["a"]
    assert await names(http, path, labelSelector="tier!=web") == ["b", "d"]
    assert await names(http, path, labelSelector="tier in (db, web),env") == ["a", "b"]
    assert await names(http, path, labelSelector="tier notin (web)") == ["b", "d"]
    assert await names(http, path, labelSelector="!env") == ["c", "d"]
    status, body = await http.get(path, labelSelector="tier in web(")
    assert status == 400


async def test_field_selectors(http, ns):
    await make(http, ns)
    assert await names(http, widgets_path(ns), fieldSelector="metadata.name=b") == ["b"]
    assert await names(http, widgets_path(ns), fieldSelector="metadata.name!=b") == ["a", "c", "d"]
    assert await names(http, f"{WIDGETS}/widgets", fieldSelector=f"metadata.namespace={ns},metadata.name=c") == ["c"]


async def test_namespaced_and_cluster_wide_lists(http, ns, kubectl):
    other = ns + "-o"
    kubectl("create", "namespace", other)
    await http.post(widgets_path(ns), widget("here"))
    await http.post(widgets_path(other), widget("there"))
    assert await names(http, widgets_path(ns)) == ["here"]
    assert await names(http, widgets_path(other)) == ["there"]
    status, everything = await http.get(f"{WIDGETS}/widgets")
    assert everything["kind"] == "WidgetList"
    found = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everything["items"]}
    assert {(ns, "here"), (other, "there")} <= found
    status, namespaces = await http.get("/api/v1/namespaces")
    assert namespaces["kind"] == "NamespaceList" and ns in [o["metadata"]["name"] for o in namespaces["items"]]


async def test_paging_with_limit_and_continue(http, ns):
    await make(http, ns)
    status, page1 = await http.get(widgets_path(ns), limit="3")
    assert [o["metadata"]["name"] for o in page1["items"]] == ["a", "b", "c"]
    assert page1["metadata"]["remainingItemCount"] == 1
    status, page2 = await http.get(widgets_path(ns), limit="3", **{"continue": page1["metadata"]["continue"]})
    assert [o["metadata"]["name"] for o in page2["items"]] == ["d"] and page2["metadata"]["continue"] == ""
    status, configmaps = await http.get(f"/api/v1/namespaces/{ns}/configmaps", limit="3")
    assert "continue" not in configmaps["metadata"]   # a built-in list leaves it out on its last page


async def test_table_output_uses_printer_columns(http, ns):
    await http.post(widgets_path(ns), widget("tbl", size=4))
    await http.patch(widgets_path(ns, "tbl", "status"), {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    status, table = await http.call("GET", widgets_path(ns), headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Ready", "Age"]
    assert table["rows"][0]["cells"][:3] == ["tbl", 4, "True"]
