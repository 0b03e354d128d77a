"""Injected API faults (off by default): conflicts on writes, server errors, throttling with Retry-After,
shortened watches; deterministic for a seed; the test's own kubectl and the simulators are spared."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from kubernetes import client as k8s

from ssvm_devcluster import DevCluster
from ssvm_devcluster.faults import FaultPlan
from tests.conftest import kubectl_run


def _core(cluster, retries: object = None) -> k8s.CoreV1Api:
    from kubernetes import config

    cfg = k8s.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig_path), client_configuration=cfg)
    cfg.retries = retries   # False: every answer as it comes (urllib3 would otherwise wait out each Retry-After)
    api = k8s.ApiClient(cfg)
    api.user_agent = "controller-under-test/1"
    return k8s.CoreV1Api(api)


def _codes(calls) -> list[int]:
    out = []
    for call in calls:
        try:
            call()
            out.append(200)
        except k8s.ApiException as e:
            out.append(e.status)
    return out


def test_conflicts_hit_only_writes_a_real_server_could_refuse_and_spare_kubectl(tmp_path):
    with DevCluster(kubeconfig=tmp_path / "kc", simulators=[], faults=FaultPlan(conflict=0.5, seed=7)) as cluster:
        core = _core(cluster)
        kubectl_run(cluster.kubeconfig_path, "create", "configmap", "c1", "--from-literal=a=b")   # kubectl: never a fault
        guarded = _codes([lambda i=i: core.patch_namespaced_config_map("c1", "default", {
            "metadata": {"resourceVersion": core.read_namespaced_config_map("c1", "default").metadata.resource_version},
            "data": {"a": str(i)}}) for i in range(40)])
        plain = _codes([lambda i=i: core.patch_namespaced_config_map("c1", "default", {"data": {"b": str(i)}}) for i in range(20)])
        reads = _codes([lambda: core.read_namespaced_config_map("c1", "default") for _ in range(20)])
        assert 5 < guarded.count(409) < 35 and set(guarded) == {200, 409}
        assert set(plain) == {200}, "a merge patch without a resourceVersion never conflicts on a real server"
        assert set(reads) == {200}, "a conflict is a write's fault"
        assert cluster.faults.counts["conflict"] == guarded.count(409)


def test_errors_and_throttling_with_retry_after(tmp_path):
    with DevCluster(kubeconfig=tmp_path / "kc", simulators=[], faults=FaultPlan(error=0.3, throttle=0.3, seed=3)) as cluster:
        core = _core(cluster, retries=False)
        seen: dict[int, list] = {}
        for _ in range(60):
            try:
                core.list_namespaced_config_map("default")
                seen.setdefault(200, []).append(None)
            except k8s.ApiException as e:
                seen.setdefault(e.status, []).append(e.headers)
        assert {200, 500, 429} <= set(seen)
        assert all(h.get("Retry-After") == "1" for h in seen[429])


def test_the_same_seed_gives_the_same_faults():
    a, b = FaultPlan(conflict=0.2, error=0.1, seed=5), FaultPlan(conflict=0.2, error=0.1, seed=5)
    decisions = [(a.decide("update", "x"), b.decide("update", "x")) for _ in range(200)]
    assert all(x == y for x, y in decisions) and {x for x, _ in decisions} == {None, "conflict", "error"}
    assert FaultPlan().decide("patch", "x") is None, "off by default"


@pytest.mark.parametrize("spec", ["conflict=2", "nonsense=1", "error=x", "slowSeconds=-1"])
def test_a_bad_spec_is_refused(spec):
    with pytest.raises(ValueError):
        FaultPlan.parse(spec)
    proc = subprocess.run([sys.executable, "-m", "ssvm_operator.cli", "devcluster", "--faults", spec],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "faults" in proc.stderr


def test_watch_streams_are_cut_mid_stream_with_cut_watch(tmp_path):
    import http.client
    import urllib.request

    def watch(cluster, query=""):
        request = urllib.request.Request(f"{cluster.url}/api/v1/namespaces/default/configmaps?watch=1{query}",
                                         headers={"User-Agent": "controller-under-test/1"})
        return urllib.request.urlopen(request, timeout=20)

    with DevCluster(kubeconfig=tmp_path / "kc", simulators=[], faults=FaultPlan(cutWatch=1)) as cluster:
        # without the cut the server would keep the stream open for 30 to 60 minutes; the connection drops
        # without the closing chunk, as when a load balancer or the network cuts it
        with watch(cluster) as rsp, pytest.raises((http.client.IncompleteRead, ConnectionError)):
            rsp.read()
        # a stream asked to end before the cut ends cleanly, as a real server ends it at timeoutSeconds
        with watch(cluster, "&timeoutSeconds=0.5") as rsp:
            assert rsp.read() == b""
    with DevCluster(kubeconfig=tmp_path / "kc2", simulators=[]) as cluster:
        with watch(cluster, "&_devclusterCutAfter=0.1&timeoutSeconds=1") as rsp:
            assert rsp.read() == b"", "a client cannot set the server's mark"


async def test_a_simulators_watch_resumes_after_its_stream_is_cut(tmp_path):
    from ssvm_devcluster.simulators import ApiClient, Endpoint

    path = "/api/v1/namespaces/default/configmaps"
    faults = FaultPlan(cutWatch=0.5)
    with DevCluster(kubeconfig=tmp_path / "kc", simulators=[], faults=faults) as cluster:
        async with Endpoint.from_kubeconfig(cluster.kubeconfig_path).session() as session:
            api = ApiClient(cluster.url, session, user_agent="controller-under-test/1")   # not spared: its streams are cut
            stop, seen = asyncio.Event(), []

            async def consume():
                async for event in api.watch(path, stop=stop):
                    seen.append(event["object"]["metadata"]["name"])
                    if seen[-1] == "after-cuts":
                        return
            task = asyncio.create_task(consume())
            await asyncio.sleep(1.6)   # three cuts
            code, _ = await api.create(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-cuts"}})
            assert code == 201
            await asyncio.wait_for(task, 10)
            stop.set()
    assert seen == ["after-cuts"] and faults.counts["cutWatch"] >= 3, (seen, dict(faults.counts))
