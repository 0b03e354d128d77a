"""Templates: (1) throughput of one download through the agent (a real job process writing into a store
directory, hashing every byte) against `curl` fetching the same file from the same server in the same
run, alone and piped through `sha256sum`, and the job's peak memory; (2) N templates x S stores on the dev cluster (KubeVirt simulator, simulated guests running
the real agent, the operator in a thread): time until every template is Ready on every store, and the
SSH calls per template by action. Prints a JSON document, then a table.

  .venv/bin/python bench/template_bench.py [--size-mib 1024] [--templates 20] [--stores 5] [--template-kib 1024]
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from ssvm_operator import constants as c  # noqa: E402
from ssvm_operator.agent.cli import execute  # noqa: E402

STORE = "nfs://bench.invalid/export/secondary"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def serve(directory: pathlib.Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def write_image(path: pathlib.Path, mib: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        fh.write(b"QFI\xfb" + (3).to_bytes(4, "big") + bytes(16) + (mib << 20).to_bytes(8, "big"))
        for _ in range(mib):
            fh.write(block)


def _peak_kib(pid: int) -> int:
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def throughput(size_mib: int, work: pathlib.Path) -> dict[str, Any]:
    site = work / "www"
    site.mkdir()
    write_image(site / "big.qcow2", size_mib)
    server, port = serve(site)
    url = f"http://127.0.0.1:{port}/big.qcow2"
    size = (site / "big.qcow2").stat().st_size
    try:
        started = time.perf_counter()
        subprocess.run(["curl", "-sS", "-o", str(work / "curl.out"), url], check=True)
        curl_s = time.perf_counter() - started
        (work / "curl.out").unlink()
        started = time.perf_counter()   # the same work the agent does: the bytes to disk and their sha256
        subprocess.run(f"curl -sS {url} | tee {work / 'curl.out'} | sha256sum >/dev/null", shell=True, check=True)
        curl_hash_s = time.perf_counter() - started
        (work / "curl.out").unlink()

        guest = work / "guest"
        assert execute("setup-store", {"url": STORE}, state_dir=str(guest))[0] == 0
        started = time.perf_counter()
        code, doc = execute("template-download", {
            "job": "bench", "request": "r1", "storeUrl": STORE, "installDir": "template/tmpl/bench/big", "fileName": "big.qcow2",
            "format": "QCOW2", "source": {"url": url, "allowedInternalSites": ["127.0.0.1/32"]}}, state_dir=str(guest))
        assert code == 0, doc
        peak, pid, state = 0, None, {}
        while True:
            state = execute("jobs", {"jobs": ["bench"]}, state_dir=str(guest))[1]["jobs"]["bench"]
            pid = state.get("pid") or pid
            if pid:
                peak = max(peak, _peak_kib(pid))
            if state["state"] in ("Ready", "Error"):
                break
            time.sleep(0.05)
        agent_s = time.perf_counter() - started
        assert state["state"] == "Ready", state
    finally:
        server.shutdown()
    return {"sizeBytes": size, "curlSeconds": round(curl_s, 2), "agentSeconds": round(agent_s, 2),
            "curlMiBps": round(size / curl_s / 2**20, 1), "agentMiBps": round(size / agent_s / 2**20, 1),
            "agentToCurl": round(curl_s / agent_s, 2), "curlSha256Seconds": round(curl_hash_s, 2),
            "agentToCurlSha256": round(curl_hash_s / agent_s, 2), "agentPeakRssMiB": round(peak / 1024, 1)}


def many(templates: int, stores: int, kib: int, work: pathlib.Path) -> dict[str, Any]:
    from prometheus_client import REGISTRY
    from ssvm_devcluster.sim_guests import GuestSimConfig, GuestSimulator
    from ssvm_devcluster.sim_kubevirt import KubeVirtSimConfig, KubeVirtSimulator
    from ssvm_operator.controllers.template.worker import TemplateSettings
    from tests.clusters import with_simulators
    from tests.integration.harness import Api, OperatorThread, ready_ssvms, wait_for

    site = work / "many"
    site.mkdir()
    for i in range(templates):
        write_image(site / f"t{i}.qcow2", max(1, kib // 1024))
    server, port = serve(site)
    guests = GuestSimulator(GuestSimConfig(state_root=str(work / "guests")))
    kubevirt = KubeVirtSimulator(KubeVirtSimConfig(boot_delay=0.2, control_range="127.84.0.0/16"))

    def pushes() -> dict[str, float]:
        return {s.labels["action"]: s.value for m in REGISTRY.collect() if m.name == "ssvm_operator_guest_action_pushes"
                for s in m.samples if s.name.endswith("_total")}

    try:
        with with_simulators("dev", [kubevirt, guests], work / "cluster") as cluster:
            os.environ["KUBECONFIG"] = str(cluster.operator_kubeconfig_path)
            api = Api(str(cluster.kubeconfig_path), cluster.namespace("bench"))
            api.create(c.ZONE_PLURAL, c.ZONE_KIND, "z1", {"secondaryStorage": {
                "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}}, "maxCount": stores,
                "allowedInternalSites": ["127.0.0.1"], "health": {"intervalSeconds": 30}}})
            for s in range(stores):
                api.store(f"s{s}", "z1")
            with OperatorThread(api.ns, None, scan_interval=10.0, template_settings=TemplateSettings()):
                wait_for(f"{stores} SSVMs Ready", ready_ssvms(api, stores), timeout=300)
                before = pushes()
                started = time.perf_counter()
                for i in range(templates):
                    api.create(c.TEMPLATE_PLURAL, c.TEMPLATE_KIND, f"t{i}", {
                        "url": f"http://127.0.0.1:{port}/t{i}.qcow2", "format": "QCOW2", "zones": ["z1"]})

                def all_ready() -> bool:
                    items = api.list(c.TEMPLATE_PLURAL)
                    return len(items) == templates and all(
                        (t.get("status") or {}).get("storesReady") == f"{stores}/{stores}" for t in items)

                wait_for("every template Ready on every store", all_ready, timeout=600)
                elapsed = time.perf_counter() - started
                after = pushes()
    finally:
        server.shutdown()
    calls = {a: after.get(a, 0) - before.get(a, 0) for a in ("template-download", "jobs", "template-list", "template-remove")}
    return {"templates": templates, "stores": stores, "imageKiB": kib, "allReadySeconds": round(elapsed, 1),
            "sshCallsPerTemplate": {a: round(n / templates, 1) for a, n in calls.items()},
            "downloadsPerTemplate": round(calls["template-download"] / templates, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--templates", type=int, default=20)
    parser.add_argument("--stores", type=int, default=5)
    parser.add_argument("--template-kib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssvm-template-bench-") as tmp:
        work = pathlib.Path(tmp)
        result = {"throughput": throughput(args.size_mib, work), "many": many(args.templates, args.stores, args.template_kib, work)}
    print(json.dumps(result, indent=1))
    t, m = result["throughput"], result["many"]
    rows = [("download of %d MiB: agent / curl" % (t["sizeBytes"] >> 20), f"{t['agentSeconds']} s / {t['curlSeconds']} s "
             f"({t['agentMiBps']} / {t['curlMiBps']} MiB/s, agent at {t['agentToCurl']:.0%} of curl)"),
            ("curl | tee | sha256sum (the agent's work)", f"{t['curlSha256Seconds']} s (agent at {t['agentToCurlSha256']:.0%} of it)"),
            ("agent job peak RSS", f"{t['agentPeakRssMiB']} MiB"),
            (f"{m['templates']} templates x {m['stores']} stores: all Ready", f"{m['allReadySeconds']} s"),
            ("SSH calls per template", ", ".join(f"{a} {n}" for a, n in m["sshCallsPerTemplate"].items()))]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
