"""Day-2 operations on both control planes: a health check on request, and the CLI / kubectl plugin."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from ssvm_operator import constants as c

from .harness import OperatorThread, ready_ssvms, wait_for
from .test_guest_ops import _zone, gapi, guest_cluster  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def test_a_check_request_runs_a_check_now(gapi):  # noqa: F811
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        wait_for("1 SSVM Running, Ready and healthy", ready_ssvms(gapi, 1), timeout=90)
        gapi.patch(c.SSVM_PLURAL, "z1-ssvm-1", {"spec": {"checkRequest": "check-1"}})
        ssvm = wait_for("the check request acknowledged", lambda: (s := gapi.get(c.SSVM_PLURAL, "z1-ssvm-1"))
                        and s["status"].get("observedCheckRequest") == "check-1" and s, timeout=30)
        assert ssvm["status"]["health"]["healthy"] is True and ssvm["status"]["health"]["lastCheckTime"]
        op.check()


def _kubectl_ssvm(cluster, *args, timeout=120):
    """`kubectl ssvm ...`: kubectl finds the plugin (kubectl-ssvm) on PATH, as a user's would."""
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}",
           "KUBECONFIG": str(cluster.kubeconfig_path)}
    kubectl = pathlib.Path(sys.executable).parent / "kubectl"
    return subprocess.run([str(kubectl), "ssvm", *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_the_kubectl_plugin_acts_through_the_api_and_waits(gapi, guest_cluster):  # noqa: F811
    cluster, _ = guest_cluster
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    gapi.store("s2", "z1")   # two SSVMs: one may stop while the zone keeps minRunning 1
    ns = ["-n", gapi.ns]
    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        wait_for("2 SSVMs Running, Ready and healthy", ready_ssvms(gapi, 2), timeout=90)
        listed = _kubectl_ssvm(cluster, "list", *ns)
        assert listed.returncode == 0 and "z1-ssvm-1" in listed.stdout and "Running" in listed.stdout, listed
        for verb, field in (("reboot", "observedRebootRequest"), ("recreate", "observedRecreateRequest")):
            done = _kubectl_ssvm(cluster, verb, "z1-ssvm-1", *ns)
            assert done.returncode == 0 and f"{verb} done" in done.stdout, done
            assert "z1-ssvm-1:" in done.stderr, "a progress line while waiting"
            assert gapi.get(c.SSVM_PLURAL, "z1-ssvm-1")["status"][field].startswith(verb)
        stopped = _kubectl_ssvm(cluster, "stop", "z1-ssvm-2", *ns)
        assert stopped.returncode == 0 and gapi.get(c.SSVM_PLURAL, "z1-ssvm-2")["status"]["state"] == "Stopped", stopped
        assert _kubectl_ssvm(cluster, "start", "z1-ssvm-2", *ns).returncode == 0
        checked = _kubectl_ssvm(cluster, "check", "z1-ssvm-1", *ns)
        assert checked.returncode == 0 and "healthy at" in checked.stdout, checked
        status = _kubectl_ssvm(cluster, "zone", "status", "z1", *ns)
        assert status.returncode == 0 and "Ready=True SSVMsRunning" in status.stdout and "z1-ssvm-1" in status.stdout, status
        assert "SSVMStarted" in status.stdout and "z1-ssvm-2" in status.stdout, "recent Events in the report"
        missing = _kubectl_ssvm(cluster, "reboot", "nope", *ns)
        assert missing.returncode == 2 and "not found" in missing.stderr
        op.check()


def test_the_plugin_exits_non_zero_with_the_reason_of_a_failing_ssvm(gapi, guest_cluster):  # noqa: F811
    cluster, _ = guest_cluster
    gapi.create(c.ZONE_PLURAL, c.ZONE_KIND, "z1", {"secondaryStorage": {
        "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}},
        "copyPasswordSecretRef": {"name": "missing", "key": "password"}}})
    gapi.store("s1", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0):
        wait_for("the SSVM running", lambda: ((gapi.get(c.SSVM_PLURAL, "z1-ssvm-1") or {}).get("status") or {}).get("state") == "Running",
                 timeout=90)
        failed = _kubectl_ssvm(cluster, "reboot", "z1-ssvm-1", "-n", gapi.ns, "--fail-after", "3")
        assert failed.returncode == 1 and "CopyPasswordSecretNotFound" in failed.stderr, failed
        report = _kubectl_ssvm(cluster, "zone", "status", "z1", "-n", gapi.ns)
        assert report.returncode == 1 and "SSVMsFailing" in report.stdout, report


def test_removing_a_store_unmounts_it_everywhere_and_lowers_the_desired_count(gapi, guest_cluster):  # noqa: F811
    import json

    _, guests = guest_cluster
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    gapi.store("s2", "z1")

    def guest_urls(name):
        _, guest = guests.guests[(gapi.ns, name)]
        path = guest.state_dir / "var/lib/ssvm-agent/stores.json"
        return {s["url"] for s in json.loads(path.read_text()).values()} if path.exists() else set()

    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        ssvms = wait_for("2 SSVMs Running, Ready and healthy", ready_ssvms(gapi, 2), timeout=90)
        s2 = "nfs://10.0.0.5/export/s2"
        assert all(s2 in guest_urls(n) for n in ssvms)
        gapi.delete(c.IMAGESTORE_PLURAL, "s2")
        wait_for("s2 unmounted from every SSVM", lambda: all(s2 not in guest_urls(n) and guest_urls(n) for n in ssvms), timeout=60)
        zone = wait_for("the desired count follows", lambda: (z := gapi.get(c.ZONE_PLURAL, "z1"))
                        and z["status"].get("desiredSSVMs") == 1 and z)
        assert zone["status"]["imageStores"] == 1 and len(gapi.ssvms()) == 2, "without scaleIn the second SSVM is kept"
        wait_for("ImageStoreRemoved on the zone", lambda: any(
            e["reason"] == "ImageStoreRemoved" and e["involved_object"]["name"] == "z1" for e in gapi.events()))
        for name in ssvms:
            record = wait_for(f"{name}'s status without s2", lambda: (r := gapi.get(c.SSVM_PLURAL, name)["status"]["actions"]["setupStore"])
                              and [e["store"] for e in r["appliedStores"]] == ["s1"] and r)
            assert record["appliedHash"] == record["desiredHash"] and "s2: removed and unmounted" in record["message"]
        op.check()


def test_diagnose_collects_a_bundle_without_secrets(gapi, guest_cluster, tmp_path):  # noqa: F811
    import base64
    import tarfile

    cluster, _ = guest_cluster
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        wait_for("1 SSVM Running, Ready and healthy", ready_ssvms(gapi, 1), timeout=90)
        out = tmp_path / "bundle.tar.gz"
        done = _kubectl_ssvm(cluster, "diagnose", "z1-ssvm-1", "-n", gapi.ns, "-o", str(out))
        assert done.returncode == 0 and "bundle.tar.gz" in done.stdout, done
        with tarfile.open(out) as tar:
            files = {m.name.rsplit("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers()}
        assert {"summary.json", "iptables.txt", "mounts.json", "config.json", "disk.json"} <= set(files)
        assert "SSVM-COPY" in files["iptables.txt"] and "/export/s1" in files["config.json"]
        cm = gapi.core.read_namespaced_config_map("z1-ssvm-1-diagnostics", gapi.ns)
        assert cm.metadata.owner_references[0].kind == c.SSVM_KIND
        secrets = [base64.b64decode(v).decode().strip() for s in gapi.core.list_namespaced_secret(gapi.ns).items
                   for k, v in (s.data or {}).items() if k in ("ssh-privatekey", "password")]
        assert len(secrets) >= 3
        bundle = "".join(files.values()) + done.stdout + done.stderr
        assert not [s for s in secrets if s in bundle] and not [
            line for s in secrets for line in s.splitlines()[1:-1] if line and line in bundle], "a secret in the bundle"
        printed = _kubectl_ssvm(cluster, "diagnose", "z1-ssvm-1", "-n", gapi.ns)
        assert printed.returncode == 0 and "===== iptables.txt" in printed.stdout
        assert any(e["reason"] == "DiagnosticsCollected" for e in gapi.events())
        op.check()
