"""Watches: initial state, resuming from a resourceVersion, selectors (with objects entering and
leaving them), namespaced and cluster-wide, 410 Gone for a compacted resourceVersion."""
from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.devcluster.helpers import WIDGETS, Http, widget, widgets_path


async def test_watch_without_resource_version_starts_with_the_current_state(http, ns):
    await http.post(widgets_path(ns), widget("w1"))
    await http.post(widgets_path(ns), widget("w2"))
    events = await http.watch(widgets_path(ns), count=2, timeoutSeconds="5")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w1"), ("ADDED", "w2")]
    assert events[0]["object"]["apiVersion"] == "test.ssvm.io/v1alpha1"


async def test_watch_from_a_resource_version_replays_later_changes(http, ns):
    status, listed = await http.get(widgets_path(ns))
    rv = listed["metadata"]["resourceVersion"]
    await http.post(widgets_path(ns), widget("r1"))
    await http.patch(widgets_path(ns, "r1"), {"spec": {"size": 2}})
    await http.delete(widgets_path(ns, "r1"))
    events = await http.watch(widgets_path(ns), count=3, resourceVersion=rv, timeoutSeconds="5")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


async def test_live_events_reach_an_open_watch(http, ns):
    status, listed = await http.get(widgets_path(ns))
    task = asyncio.create_task(http.watch(widgets_path(ns), count=2, resourceVersion=listed["metadata"]["resourceVersion"]))
    await asyncio.sleep(0.2)
    await http.post(widgets_path(ns), widget("live"))
    await http.patch(widgets_path(ns, "live", "status"), {"status": {"observedGeneration": 1}})
    events = await task
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
    assert events[1]["object"]["status"] == {"observedGeneration": 1}


async def test_label_selector_watch_sees_objects_enter_and_leave(http, ns):
    await http.post(widgets_path(ns), widget("sel"))
    status, listed = await http.get(widgets_path(ns))
    rv = listed["metadata"]["resourceVersion"]
    await http.patch(widgets_path(ns, "sel"), {"metadata": {"labels": {"pick": "me"}}})
    await http.patch(widgets_path(ns, "sel"), {"spec": {"size": 2}})
    await http.patch(widgets_path(ns, "sel"), {"metadata": {"labels": {"pick": None}}})
    await http.post(widgets_path(ns), widget("other"))
    events = await http.watch(widgets_path(ns), count=3, resourceVersion=rv, labelSelector="pick=me", timeoutSeconds="2")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert all(e["object"]["metadata"]["name"] == "sel" for e in events)


async def test_field_selector_and_cluster_wide_watch(http, ns):
    status, listed = await http.get(f"{WIDGETS}/widgets")
    rv = listed["metadata"]["resourceVersion"]
    await http.post(widgets_path(ns), widget("fa"))
    await http.post(widgets_path(ns), widget("fb"))
    events = await http.watch(f"{WIDGETS}/widgets", count=2, resourceVersion=rv, timeoutSeconds="2",
                              fieldSelector="metadata.name=fb")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "fb")]
    everything = await http.watch(f"{WIDGETS}/widgets", count=2, resourceVersion=rv, timeoutSeconds="2")
    assert [e["object"]["metadata"]["name"] for e in everything] == ["fa", "fb"]


async def test_a_watch_sees_only_its_namespace(http, ns, kubectl):
    other = ns + "-w"
    kubectl("create", "namespace", other)
    status, listed = await http.get(f"{WIDGETS}/widgets")
    rv = listed["metadata"]["resourceVersion"]
    await http.post(widgets_path(other), widget("elsewhere"))
    await http.post(widgets_path(ns), widget("mine"))
    events = await http.watch(widgets_path(ns), count=2, resourceVersion=rv, timeoutSeconds="2")
    assert [e["object"]["metadata"]["name"] for e in events] == ["mine"]


async def test_a_compacted_resource_version_is_gone(tmp_path):
    from ssvm_devcluster import DevCluster
    with DevCluster(kubeconfig=tmp_path / "kc", simulators=[], history_limit=3) as cluster:
        async with aiohttp.ClientSession() as session:
            http = Http(cluster.url, session)
            status, first = await http.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c0"}})
            for i in range(1, 6):
                await http.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": f"c{i}"}})
            events = await http.watch("/api/v1/namespaces/default/configmaps", count=1,
                                      resourceVersion=first["metadata"]["resourceVersion"])
            assert events[0]["type"] == "ERROR"
            assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


async def test_a_watch_list_never_delivers_an_older_version_after_a_newer_one(http, ns):
    # kubectl wait and informers use sendInitialEvents: the initial state and the live events that follow
    # must form one history. Watches opened while the object changes fast must see its versions only grow.
    await http.post(widgets_path(ns), widget("busy"))
    final = 60
    path = http.url + widgets_path(ns)
    params = {"watch": "true", "sendInitialEvents": "true", "allowWatchBookmarks": "true",
              "resourceVersionMatch": "NotOlderThan", "fieldSelector": "metadata.name=busy", "timeoutSeconds": "30"}

    async def writer() -> None:
        async def one(i: int) -> None:
            status, _ = await http.patch(widgets_path(ns, "busy"), {"metadata": {"annotations": {"n": str(i)}}})
            assert status == 200
        for i in range(1, final + 1, 4):  # a few writes in flight at once, in order per batch
            await asyncio.gather(*(one(j) for j in range(i, min(i + 4, final + 1))))
        await one(final + 1)

    async def watcher(delay: float) -> list[int]:
        await asyncio.sleep(delay)
        seen: list[int] = []
        async with http.session.get(path, params=params) as r:
            async for raw in r.content:
                event = json.loads(raw)
                if event["type"] == "BOOKMARK":
                    continue
                seen.append(int(event["object"]["metadata"]["resourceVersion"]))
                if event["object"]["metadata"].get("annotations", {}).get("n") == str(final + 1):
                    break
        return seen

    results = await asyncio.wait_for(asyncio.gather(writer(), *(watcher(i * 0.01) for i in range(20))), timeout=60)
    for seen in results[1:]:
        assert seen == sorted(seen), f"a watch went back in time: {seen}"


async def test_a_watch_from_before_the_kind_existed_is_gone(http, ns):
    # kube-apiserver's watch cache of a kind starts when the kind is served: older versions are 410 Gone
    for _ in range(100):   # a real server answers 429 while a new kind's watch cache fills
        async with http.session.get(http.url + widgets_path(ns), params={"watch": "true", "resourceVersion": "1",
                                                                          "timeoutSeconds": "2"}) as r:
            if r.status != 429:
                assert r.status == 200, await r.text()
                events = [json.loads(line) for line in [await r.content.readline()] if line.strip()]
                break
        await asyncio.sleep(0.2)
    assert events and events[0]["type"] == "ERROR", events
    status = events[0]["object"]
    assert (status["code"], status["reason"]) == (410, "Expired")
    assert status["message"].startswith("too old resource version: 1 (")
