"""The request log: every API request with its verb, group, resource, subresource, namespace, user agent."""
from __future__ import annotations

from tests.clusters import dev_only
from tests.devcluster.helpers import widget, widgets_path


@dev_only
async def test_requests_are_logged_with_their_verbs(http, ns, devcluster):
    status, log = await http.get("/_devcluster/requests")
    since = max([e["seq"] for e in log["items"]], default=0)
    ua = {"User-Agent": "request-log-test/1"}
    await http.call("POST", widgets_path(ns), widget("logged"), headers=ua)
    await http.call("GET", widgets_path(ns, "logged"), headers=ua)
    await http.call("GET", widgets_path(ns), headers=ua)
    await http.call("PATCH", widgets_path(ns, "logged", "status"), {"status": {}}, ctype="application/merge-patch+json", headers=ua)
    await http.call("PUT", widgets_path(ns, "logged"), {}, headers=ua)
    await http.call("GET", f"/api/v1/namespaces/{ns}/events", headers=ua, watch="true", timeoutSeconds="1")
    await http.call("DELETE", widgets_path(ns, "logged"), headers=ua)
    await http.call("DELETE", widgets_path(ns), headers=ua)
    await http.call("GET", "/apis/coordination.k8s.io/v1", headers=ua)
    status, log = await http.get("/_devcluster/requests", since=str(since))
    mine = [e for e in log["items"] if e["userAgent"] == "request-log-test/1"]
    got = [(e["verb"], e["group"], e["resource"], e["subresource"], e["namespace"]) for e in mine]
    g = "test.ssvm.io"
    assert got == [
        ("create", g, "widgets", "", ns), ("get", g, "widgets", "", ns), ("list", g, "widgets", "", ns),
        ("patch", g, "widgets", "status", ns), ("update", g, "widgets", "", ns), ("watch", "", "events", "", ns),
        ("delete", g, "widgets", "", ns), ("deletecollection", g, "widgets", "", ns), ("get", "", "", "", None),
    ]
    assert mine[0]["code"] == 201 and mine[4]["code"] == 400 and mine[-1]["resourceRequest"] is False
    assert mine[0]["path"] == widgets_path(ns) and mine[0]["method"] == "POST"
    # the Python accessor reads the same log
    assert [e["seq"] for e in devcluster.requests(since=since) if e["userAgent"] == "request-log-test/1"] == [e["seq"] for e in mine]
