"""Run the operator as the chart would start it, against a dev cluster, and return its API requests."""
from __future__ import annotations

import json
import pathlib
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from tests.conftest import kubectl_run
from tests.processes import start_with_kubeconfig, stop_process

from .helm import ROOT, by_kind

TEST_AGENT = "ssvm-rbac-test/1"
NOT_OPERATOR = ("kubectl/", "ssvm-devcluster-simulator/", TEST_AGENT)  # the test's own calls and the simulators' ones
WAIT = 90  # seconds: an upper bound on each wait, never an assertion on speed


def is_operator(entry: dict[str, Any]) -> bool:
    return not entry["userAgent"].startswith(NOT_OPERATOR)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": TEST_AGENT}), timeout=10) as rsp:
            return rsp.status, json.loads(rsp.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


def wait_for(what: str, check: Callable[[], bool], log: pathlib.Path) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what}; operator log:\n{log.read_text()[-4000:]}")


def operator_args(docs: list[dict[str, Any]], liveness_port: int) -> list[str]:
    """`ssvm-operator run` with the arguments of the chart's Deployment (ports moved to free local ones)."""
    (dep,) = by_kind(docs, "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    out = []
    for arg in args:
        if arg.startswith("--liveness="):
            arg = f"--liveness=http://127.0.0.1:{liveness_port}/healthz"
        elif arg.startswith("--metrics-port="):
            arg = "--metrics-port=0"
        out.append(arg)
    return [sys.executable, "-m", "ssvm_operator.cli", "run", *out]


def run_operator_on_examples(cluster, docs: list[dict[str, Any]], namespace: str, tmp: pathlib.Path) -> list[dict[str, Any]]:
    """Start the operator, apply the examples, wait for their Ready conditions, delete them, wait for them
    to go, stop the operator; return the operator's requests from the request log."""
    kubeconfig = cluster.kubeconfig_path
    for peering in [d for d in docs if d["kind"] in ("ClusterKopfPeering", "KopfPeering")]:
        kubectl_run(kubeconfig, "apply", "-f", "-", input=json.dumps(peering))
    since = max((e["seq"] for e in cluster.requests()), default=0)
    log = tmp / f"operator-{namespace}.log"
    proc = start_with_kubeconfig(operator_args(docs, _free_port()), kubeconfig, log, env={"POD_NAME": f"ssvm-operator-{namespace}-0"})
    try:
        kubectl_run(kubeconfig, "apply", "-n", namespace, "-f", str(ROOT / "examples"))
        objects = json.loads(kubectl_run(kubeconfig, "get", "-n", namespace, "zones,imagestores,secondarystoragevms,templates",
                                         "-o", "json").stdout)["items"]
        # every ssvm.io plural is the kind, lower case, plus "s"
        paths = [f"{cluster.url}/apis/ssvm.io/v1alpha1/namespaces/{namespace}/{o['kind'].lower()}s/{o['metadata']['name']}"
                 for o in objects]

        def all_have_ready() -> bool:
            for path in paths:
                code, obj = _get(path)
                if code != 200 or not any(c.get("type") == "Ready" for c in (obj.get("status") or {}).get("conditions", [])):
                    return False
            return True

        wait_for("a Ready condition on every example object", all_have_ready, log)
        # A stop exercises the backend's VM patch (runStrategy), as users' desiredState changes do.
        ssvm = next(o["metadata"]["name"] for o in objects if o["kind"] == "SecondaryStorageVM")
        kubectl_run(kubeconfig, "patch", "-n", namespace, "ssvm", ssvm, "--type", "merge", "-p", '{"spec":{"desiredState":"Stopped"}}')
        vm = f"{cluster.url}/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{ssvm}"
        wait_for(f"the VM of {ssvm} halted", lambda: (_get(vm)[1].get("spec") or {}).get("runStrategy") == "Halted", log)
        # A reboot exercises the backend's VirtualMachineInstance delete (a new instance), as users' reboots do.
        listed = json.loads(kubectl_run(kubeconfig, "get", "-n", namespace, "ssvm", "-o", "json").stdout)["items"]
        other = next(o["metadata"]["name"] for o in listed if o["metadata"]["name"] != ssvm)  # one the zones created
        kubectl_run(kubeconfig, "patch", "-n", namespace, "ssvm", other, "--type", "merge", "-p", '{"spec":{"rebootRequest":"rbac-1"}}')
        path = f"{cluster.url}/apis/ssvm.io/v1alpha1/namespaces/{namespace}/secondarystoragevms/{other}"
        wait_for(f"the reboot of {other} acknowledged",
                 lambda: (_get(path)[1].get("status") or {}).get("observedRebootRequest") == "rbac-1", log)
        # A diagnostics request exercises the bundle's ConfigMap (create), then a second one its patch.
        for token in ("rbac-d1", "rbac-d2"):
            kubectl_run(kubeconfig, "patch", "-n", namespace, "ssvm", other, "--type", "merge", "-p",
                        json.dumps({"spec": {"diagnosticsRequest": token}}))
            wait_for(f"diagnostics {token} of {other}",
                     lambda token=token: (_get(path)[1].get("status") or {}).get("observedDiagnosticsRequest") == token, log)
        kubectl_run(kubeconfig, "delete", "-n", namespace, "-f", str(ROOT / "examples"), "--wait=false")
        wait_for("the example objects to be deleted", lambda: all(_get(p)[0] == 404 for p in paths), log)
    finally:
        stop_process(proc, grace=30)
    return [e for e in cluster.requests(since=since) if is_operator(e)]
