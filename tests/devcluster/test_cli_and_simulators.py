"""`ssvm-operator devcluster` as a process, and the simulator plug-in point."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from ssvm_devcluster import ApiClient, DevCluster, simulators
from tests.conftest import kubectl_run


def test_cli_prints_the_kubeconfig_line_serves_and_stops_on_sigterm(tmp_path):
    kubeconfig = tmp_path / "kc" / "config"
    proc = subprocess.Popen([sys.executable, "-m", "ssvm_operator.cli", "devcluster", "--kubeconfig", str(kubeconfig)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the process prints it once serving; bounded by the test timeout
        assert line == f"kubeconfig: {kubeconfig}\n"
        assert "namespace/default" in kubectl_run(kubeconfig, "get", "namespaces", "-o", "name").stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read() == ""  # exactly one line on stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_cli_stops_on_sigint_and_honours_port(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "config"
    proc = subprocess.Popen([sys.executable, "-m", "ssvm_operator.cli", "devcluster", "--port", str(port),
                             "--kubeconfig", str(kubeconfig), "--no-simulators"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("kubeconfig: ")
        assert f"127.0.0.1:{port}" in kubeconfig.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


class LabellingSimulator:
    """A test simulator: labels every ConfigMap it sees, through the HTTP API only."""

    name = "labeller"

    async def run(self, api: ApiClient, stop: asyncio.Event) -> None:
        async for event in api.watch("/api/v1/configmaps", stop=stop):
            obj = event["object"]
            if event["type"] != "DELETED" and "simulated" not in (obj["metadata"].get("labels") or {}):
                ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
                await api.patch(f"/api/v1/namespaces/{ns}/configmaps/{name}", {"metadata": {"labels": {"simulated": "yes"}}})


def test_a_registered_simulator_runs_by_default_and_acts_through_the_api(tmp_path, monkeypatch):
    monkeypatch.setattr(simulators, "_REGISTRY", {})
    monkeypatch.setattr(simulators, "BUILTIN_MODULES", ())
    simulators.register("labeller")(LabellingSimulator)
    assert list(simulators.available()) == ["labeller"]
    with DevCluster(kubeconfig=tmp_path / "kc") as cluster:  # simulators=None: every registered one
        kubectl_run(cluster.kubeconfig_path, "create", "configmap", "c1", "--from-literal=a=b")
        deadline = 200
        while deadline:
            labels = kubectl_run(cluster.kubeconfig_path, "get", "configmap", "c1", "-o", "jsonpath={.metadata.labels}").stdout
            if "simulated" in labels:
                break
            deadline -= 1
            time.sleep(0.05)
        assert "simulated" in labels
        agents = {e["userAgent"] for e in cluster.requests() if e["verb"] == "patch"}
        assert agents == {"ssvm-devcluster-simulator/labeller"}


def test_no_simulators_when_given_none(tmp_path, monkeypatch):
    monkeypatch.setattr(simulators, "_REGISTRY", {})
    monkeypatch.setattr(simulators, "BUILTIN_MODULES", ())
    simulators.register("labeller")(LabellingSimulator)
    with DevCluster(kubeconfig=tmp_path / "kc", simulators=[]) as cluster:
        kubectl_run(cluster.kubeconfig_path, "create", "configmap", "c1", "--from-literal=a=b")
        assert not any("simulator" in e["userAgent"] for e in cluster.requests())


def test_kmock_reactions_inject_faults(tmp_path):
    import kmock
    with DevCluster(kubeconfig=tmp_path / "kc", simulators=[]) as cluster:
        cluster.emulator["get", kmock.resource("", "v1", "configmaps")] << 503
        proc = kubectl_run(cluster.kubeconfig_path, "get", "configmap", "anything", check=False)
        assert proc.returncode != 0 and ("503" in proc.stderr or "unavailable" in proc.stderr.lower()), proc.stderr
        assert "namespace/default" in kubectl_run(cluster.kubeconfig_path, "get", "ns", "-o", "name").stdout
    assert not os.path.exists(str(tmp_path / "kc") + ".tmp")


def test_two_dev_clusters_on_one_machine_take_different_control_ranges(tmp_path):
    """Simulated guests bind their control addresses on loopback: two dev clusters (two demos, a demo and a
    test run) must not share a range, or the second's guests never bind (Address already in use)."""
    from ssvm_devcluster.ranges import lease_control_range

    held = lease_control_range(lock_dir=tmp_path / "locks")
    try:
        # another process holds a range: a lease taken from here must be another one
        script = ("import sys; from pathlib import Path; from ssvm_devcluster.ranges import lease_control_range; "
                  f"print(lease_control_range(lock_dir=Path({str(tmp_path / 'locks')!r})).cidr)")
        other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()
        assert other != held.cidr and other.startswith("127.") and other.endswith("/16")
    finally:
        held.release()
    assert lease_control_range(lock_dir=tmp_path / "locks").cidr == held.cidr, "a released range is free again"


def test_each_dev_cluster_s_kubevirt_simulator_leases_its_own_range(tmp_path):
    from ssvm_devcluster.simulators import default_simulators

    firsts = [s for s in default_simulators() if s.name == "kubevirt"]
    seconds = [s for s in default_simulators() if s.name == "kubevirt"]
    with DevCluster(kubeconfig=tmp_path / "a", simulators=firsts), DevCluster(kubeconfig=tmp_path / "b", simulators=seconds):
        wait = 200
        while wait and not (firsts[0].config.control_range and seconds[0].config.control_range):
            time.sleep(0.05)
            wait -= 1
        assert firsts[0].config.control_range and seconds[0].config.control_range
        assert firsts[0].config.control_range != seconds[0].config.control_range


def test_the_control_range_flag_is_checked():
    proc = subprocess.run([sys.executable, "-m", "ssvm_operator.cli", "devcluster", "--control-range", "10.0.0.0/16"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "inside 127.0.0.0/8" in proc.stderr


def test_guest_shards_split_the_vms_and_a_bad_shard_is_refused():
    from ssvm_devcluster.sim_guests import in_shard

    names = [("bench", f"z{i}-ssvm-1") for i in range(200)]
    owners = [[s for s in range(3) if in_shard(ns, name, (s, 3))] for ns, name in names]
    assert all(len(o) == 1 for o in owners)                      # every VM has exactly one guest process
    assert {o[0] for o in owners} == {0, 1, 2}                   # and each process gets some
    proc = subprocess.run([sys.executable, "-m", "ssvm_devcluster.sim_guests", "--kubeconfig", "/nonexistent", "--shard", "3/3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--shard 3/3" in proc.stderr


def test_no_guests_leaves_the_guests_to_another_process():
    from ssvm_devcluster import cli
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert [s.name for s in cli.selected_simulators(parser.parse_args(["--no-guests"]))] == ["kubevirt"]
    assert sorted(s.name for s in cli.selected_simulators(parser.parse_args([]))) == ["guests", "kubevirt"]
    assert cli.selected_simulators(parser.parse_args(["--no-simulators"])) == []
