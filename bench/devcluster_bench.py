"""Benchmark of the embedded dev cluster: p50/p99 latency of create, patch and get, and of watch
event delivery, with N objects stored (default 10,000) and W open watches (default 50).

The server runs as its own process (`ssvm-operator devcluster`), as in the demo; this process is
the client. Prints one JSON line, then a table. Run: .venv/bin/python bench/devcluster_bench.py
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp

GROUP, VERSION, PLURAL = "bench.ssvm.io", "v1alpha1", "items"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {"group": GROUP, "scope": "Namespaced",
             "names": {"plural": PLURAL, "singular": "item", "kind": "Item", "listKind": "ItemList"},
             "versions": [{"name": VERSION, "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "required": ["size"],
                                        "x-kubernetes-validations": [{"rule": "self.size <= 1000000", "message": "too big"}],
                                        "properties": {"size": {"type": "integer", "minimum": 0},
                                                       "colour": {"type": "string", "enum": ["red", "green", "blue"],
                                                                  "default": "red"},
                                                       "tags": {"type": "array", "items": {"type": "string"}}}},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
BASE = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"n": len(ordered), "p50_ms": round(pick(0.50), 3), "p99_ms": round(pick(0.99), 3),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 3)}


async def timed(session: aiohttp.ClientSession, method: str, url: str, **kw) -> float:
    start = time.perf_counter()
    async with session.request(method, url, **kw) as resp:
        await resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {url}: {resp.status}")
    return time.perf_counter() - start


async def bench(url: str, objects: int, watches: int, samples: int, concurrency: int) -> dict:
    results: dict[str, object] = {"objects": objects, "watches": watches, "samples": samples}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + watches + 4)) as s:
        async with s.post(f"{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD) as r:
            assert r.status in (201, 409), await r.text()
        async with s.get(url + BASE) as r:
            rv = (await r.json())["metadata"]["resourceVersion"]

        # W open watches, each recording when it sees each probe event
        arrivals: dict[str, list[float]] = {}
        ready = 0
        lines = 0  # every event line seen by any watcher

        async def drained(expected: int) -> None:
            """Wait (bounded) until the watchers have read `expected` lines, so that client-side
            parsing of a backlog does not slow down the next measurement."""
            deadline = time.perf_counter() + 120
            while lines < expected and time.perf_counter() < deadline:
                await asyncio.sleep(0.01)

        async def watcher() -> None:
            nonlocal ready, lines
            async with s.get(url + BASE, params={"watch": "true", "resourceVersion": rv}, timeout=aiohttp.ClientTimeout(total=None)) as r:
                ready += 1
                async for line in r.content:
                    lines += 1
                    if b'"probe-' in line:  # parse only the probe events: the client must not be the bottleneck
                        now = time.perf_counter()
                        event = json.loads(line)
                        token = event["object"]["metadata"]["labels"].get("probe")
                        if token:
                            arrivals.setdefault(token, []).append(now)

        tasks = [asyncio.create_task(watcher()) for _ in range(watches)]
        while ready < watches:
            await asyncio.sleep(0.01)

        # N creates, `concurrency` at a time
        create_times: list[float] = []
        sem = asyncio.Semaphore(concurrency)

        async def create(i: int) -> None:
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Item",
                    "metadata": {"name": f"item-{i:05d}", "labels": {"bench": "yes", "shard": str(i % 10)}},
                    "spec": {"size": i, "tags": ["a", "b"]}}
            async with sem:
                create_times.append(await timed(s, "POST", url + BASE, json=body))

        started = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(objects)))
        results["create_total_s"] = round(time.perf_counter() - started, 2)
        results["create"] = percentiles(create_times)
        await drained(objects * watches)

        names = [f"item-{i:05d}" for i in range(objects)]
        patch_times = [await timed(s, "PATCH", f"{url}{BASE}/{random.choice(names)}", data=json.dumps({"spec": {"size": random.randint(0, 999)}}),
                                   headers={"Content-Type": "application/merge-patch+json"}) for _ in range(samples)]
        results["patch"] = percentiles(patch_times)
        await drained((objects + samples) * watches)
        get_times = [await timed(s, "GET", f"{url}{BASE}/{random.choice(names)}") for _ in range(samples)]
        results["get"] = percentiles(get_times)
        list_times = [await timed(s, "GET", url + BASE, params={"labelSelector": "shard=3"}) for _ in range(5)]
        results["list_1000_of_N_by_label"] = percentiles(list_times)

        # watch delivery: from the start of a write to each watcher's receipt of its event
        delays: list[float] = []
        for k in range(min(samples, 200)):
            token = f"probe-{k}"
            sent = time.perf_counter()
            await timed(s, "PATCH", f"{url}{BASE}/{random.choice(names)}", data=json.dumps({"metadata": {"labels": {"probe": token}}}),
                        headers={"Content-Type": "application/merge-patch+json"})
            deadline = time.perf_counter() + 10
            while len(arrivals.get(token, [])) < watches and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            got = arrivals.get(token, [])
            delays.extend(t - sent for t in got)
            results.setdefault("watch_events_lost", 0)
            results["watch_events_lost"] += watches - len(got)  # type: ignore[operator]
        results["watch_delivery"] = percentiles(delays)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--watches", type=int, default=50)
    parser.add_argument("--samples", type=int, default=1000, help="patches and gets measured (and up to 200 watch probes)")
    parser.add_argument("--concurrency", type=int, default=4, help="parallel creates")
    args = parser.parse_args()

    kubeconfig = os.path.join(tempfile.mkdtemp(prefix="devcluster-bench-"), "kubeconfig")
    server = subprocess.Popen([sys.executable, "-m", "ssvm_operator.cli", "devcluster", "--no-simulators",
                               "--kubeconfig", kubeconfig], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline() if server.stdout else ""
        if not line.startswith("kubeconfig: "):
            print("the dev cluster did not start", file=sys.stderr)
            return 1
        url = json.load(open(kubeconfig))["clusters"][0]["cluster"]["server"]
        started = time.perf_counter()
        results = asyncio.run(bench(url, args.objects, args.watches, args.samples, args.concurrency))
        results["wall_s"] = round(time.perf_counter() - started, 1)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(json.dumps(results))
    print(f"\ndev cluster: {args.objects} objects stored, {args.watches} open watches")
    print(f"{'operation':<26}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for key in ("create", "patch", "get", "list_1000_of_N_by_label", "watch_delivery"):
        r = results[key]  # type: ignore[index]
        print(f"{key:<26}{r['n']:>7}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['mean_ms']:>10.2f}")
    print(f"creates took {results['create_total_s']} s in total; watch events lost: {results.get('watch_events_lost', 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
