"""Guest operations end to end on the dev cluster: the KubeVirt simulator, simulated guests running the
real agent behind real SSH on loopback addresses, and the operator (kopf) with the kubevirt backend."""
from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from ssvm_operator import constants as c
from ssvm_devcluster.sim_guests import GUEST_ANNOTATION, HOST_KEY_ANNOTATION, GuestSimulator
from ssvm_operator.ssh.keys import fingerprint

from tests.clusters import CONTROL_PLANES, Cluster

from .harness import Api, OperatorThread, condition, guest_cluster_of, operator_key_secret, ready_ssvms, start_external_hosts, wait_for

pytestmark = pytest.mark.integration
CONTROL_RANGE = "127.78.0.0/16"   # loopback: the simulated guests bind there


@pytest.fixture(scope="module", params=CONTROL_PLANES)
def guest_cluster(request, tmp_path_factory) -> Iterator[tuple[Cluster, GuestSimulator]]:
    """The KubeVirt simulator and simulated guests, as separate controllers, on each control plane."""
    with guest_cluster_of(request, tmp_path_factory, CONTROL_RANGE, copy_port=0) as both:
        yield both


@pytest.fixture()
def gapi(guest_cluster, monkeypatch) -> Api:
    cluster, _ = guest_cluster
    monkeypatch.setenv("KUBECONFIG", str(cluster.operator_kubeconfig_path))
    return Api(str(cluster.kubeconfig_path), cluster.namespace("g"))


def _zone(api: Api, name: str) -> None:
    api.create(c.ZONE_PLURAL, c.ZONE_KIND, name, {"secondaryStorage": {
        "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}},
        "health": {"intervalSeconds": 5, "failureThreshold": 3}}})




def _secret_text(api: Api, name: str, key: str) -> str:
    secret = api.core.read_namespaced_secret(name, api.ns)
    if secret.data and key in secret.data:
        return base64.b64decode(secret.data[key]).decode()
    return (secret.string_data or {})[key]


def test_a_zone_converges_to_running_ssvms_with_applied_actions(gapi, guest_cluster):
    _, guests = guest_cluster
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    gapi.store("s2", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0):
        ssvms = wait_for("2 SSVMs Running, Ready and healthy", ready_ssvms(gapi, 2), timeout=90)
        for name, s in ssvms.items():
            st = s["status"]
            assert st["nics"]["control"]["ip"].startswith("127.78."), st["nics"]
            for key in ("setupStore", "firewall", "vmSetup"):
                rec = st["actions"][key]
                assert rec["result"] == "Succeeded" and rec["appliedHash"] == rec["desiredHash"], (name, key, rec)
            for type_ in ("SSHReady", "StoresMounted", "FirewallProgrammed", "Healthy"):
                assert condition(s, type_)["status"] == "True", (name, type_, condition(s, type_))
            host_public = _secret_text(gapi, f"{name}-ssh-hostkey", "ssh-publickey")
            assert st["hostKeyFingerprint"] == fingerprint(host_public.strip())
            owner = gapi.core.read_namespaced_secret(f"{name}-ssh-hostkey", gapi.ns).metadata.owner_references[0]
            assert (owner.kind, owner.name, owner.uid) == (c.SSVM_KIND, name, s["metadata"]["uid"])
        # The mesh: each guest's copy port admits exactly the other SSVM's public address.
        public = {n: s["status"]["nics"]["public"]["ip"] for n, s in ssvms.items()}
        for name in ssvms:
            _, guest = guests.guests[(gapi.ns, name)]
            allow = json.loads((guest.state_dir / "etc/ssvm-agent/copy-server.json").read_text())["allow"]
            assert allow == [ip for n, ip in public.items() if n != name]
        # an SSVM's own status is written before the stores' mounts: wait for those to land too
        stores = wait_for("both stores mounted on both SSVMs", lambda: (st := {n: gapi.get(c.IMAGESTORE_PLURAL, n) for n in ("s1", "s2")})
                          and all(len((x.get("status") or {}).get("mounts") or []) == 2 for x in st.values()) and st)
        for store in stores.values():
            mounts = store["status"]["mounts"]
            assert sorted(m["ssvm"] for m in mounts) == sorted(ssvms), mounts
            assert all(m["result"] == "Mounted" and "/mnt/SecStorage/" in m["parentDir"] for m in mounts)
            assert condition(store, "Mounted")["status"] == "True" and condition(store, "Ready")["status"] == "True"
        before = {n: s["status"]["actions"] for n, s in gapi.ssvms().items()}
        statuses = {n: s["status"] for n, s in gapi.ssvms().items()}
        checks_before = _health_checks(gapi.ns, "z1")
    # An operator restart re-pushes nothing: after its first health checks, every action record is as it was,
    # and a steady guest's health, found unchanged, is not rewritten either.
    with OperatorThread(gapi.ns, None, scan_interval=3.0):
        wait_for("a health check of every SSVM by the new operator",
                 lambda: _health_checks(gapi.ns, "z1") >= checks_before + len(statuses), timeout=60)
        after = {n: s["status"] for n, s in gapi.ssvms().items()}
        assert {n: s["actions"] for n, s in after.items()} == before
        assert {n: s["health"] for n, s in after.items()} == {n: s["health"] for n, s in statuses.items()}
    # No secret value in any status or event.
    password = _secret_text(gapi, "z1-ssvm-copy", "password")
    operator_key = _secret_text(gapi, "ssvm-operator-ssh", "ssh-privatekey")
    dumped = json.dumps([gapi.list(c.SSVM_PLURAL), gapi.list(c.IMAGESTORE_PLURAL), gapi.list(c.ZONE_PLURAL)]) + \
        json.dumps(gapi.events(), default=str)
    assert password not in dumped
    assert all(line not in dumped for line in operator_key.splitlines() if len(line) > 20 and "-----" not in line)


def _health_checks(namespace: str, zone: str) -> float:
    """Health checks the operator (running in this process) made in the zone, from its metrics."""
    from prometheus_client import REGISTRY

    return sum(REGISTRY.get_sample_value("ssvm_operator_health_checks_total",
                                         {"namespace": namespace, "zone": zone, "result": r}) or 0 for r in ("healthy", "unhealthy"))


def test_a_guest_presenting_another_host_key_is_refused(gapi):
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0):
        wait_for("1 SSVM Running", ready_ssvms(gapi, 1), timeout=90)
        custom = k8s.CustomObjectsApi(gapi.client)
        custom.patch_namespaced_custom_object("kubevirt.io", "v1", gapi.ns, "virtualmachines", "z1-ssvm-1",
                                              {"metadata": {"annotations": {HOST_KEY_ANNOTATION: "impostor"}}},
                                              _content_type="application/merge-patch+json")
        gapi.patch(c.SSVM_PLURAL, "z1-ssvm-1", {"spec": {"rebootRequest": "r1"}})
        ssvm = wait_for("SSHReady=False HostKeyMismatch", lambda: (s := gapi.get(c.SSVM_PLURAL, "z1-ssvm-1"))
                        and condition(s, "SSHReady").get("reason") == "HostKeyMismatch" and s, timeout=60)
        assert condition(ssvm, "SSHReady")["status"] == "False"
        assert ssvm["status"]["state"] == "Starting"
        assert condition(ssvm, "Ready")["status"] == "False"


def test_a_vm_whose_ssh_never_answers_is_recreated_after_the_start_timeout(gapi):
    gapi.create(c.ZONE_PLURAL, c.ZONE_KIND, "z1", {"secondaryStorage": {
        "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}},
        "health": {"intervalSeconds": 5, "failureThreshold": 3, "startTimeoutSeconds": 10}}})
    gapi.store("s1", "z1")
    custom = k8s.CustomObjectsApi(gapi.client)
    with OperatorThread(gapi.ns, None, scan_interval=3.0):
        wait_for("1 SSVM Running", ready_ssvms(gapi, 1), timeout=90)
        first_vm = custom.get_namespaced_custom_object("kubevirt.io", "v1", gapi.ns, "virtualmachines", "z1-ssvm-1")
        custom.patch_namespaced_custom_object("kubevirt.io", "v1", gapi.ns, "virtualmachines", "z1-ssvm-1",
                                              {"metadata": {"annotations": {GUEST_ANNOTATION: "silent"}}},
                                              _content_type="application/merge-patch+json")
        gapi.patch(c.SSVM_PLURAL, "z1-ssvm-1", {"spec": {"rebootRequest": "r1"}})  # the next instance never boots
        wait_for("SSH refused on the silent instance", lambda: condition(gapi.get(c.SSVM_PLURAL, "z1-ssvm-1"), "SSHReady")
                 .get("reason") == "ConnectionRefused", timeout=60)
        ssvm = wait_for("a start-timeout recreate", lambda: (s := gapi.get(c.SSVM_PLURAL, "z1-ssvm-1"))
                        and (s["spec"].get("recreateRequest") or "").startswith("start-timeout-") and s, timeout=60)
        wait_for("Running and Ready on a new VM", ready_ssvms(gapi, 1), timeout=90)
        vm = custom.get_namespaced_custom_object("kubevirt.io", "v1", gapi.ns, "virtualmachines", "z1-ssvm-1")
        assert vm["metadata"]["uid"] != first_vm["metadata"]["uid"]
        assert GUEST_ANNOTATION not in (vm["metadata"].get("annotations") or {})
        assert gapi.get(c.SSVM_PLURAL, "z1-ssvm-1")["status"]["observedRecreateRequest"] == ssvm["spec"]["recreateRequest"]
        assert "SSVMStartFailed" in {e["reason"] for e in gapi.events() if e["involved_object"]["name"] == "z1-ssvm-1"}


def test_an_ssvm_unhealthy_for_the_threshold_is_recreated(gapi, guest_cluster):
    _, guests = guest_cluster
    gapi.create(c.ZONE_PLURAL, c.ZONE_KIND, "z1", {"secondaryStorage": {
        "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}},
        "health": {"intervalSeconds": 5, "failureThreshold": 2}}})
    gapi.store("s1", "z1")
    custom = k8s.CustomObjectsApi(gapi.client)
    with OperatorThread(gapi.ns, None, scan_interval=3.0):
        wait_for("1 SSVM Running", ready_ssvms(gapi, 1), timeout=90)
        first_vm = custom.get_namespaced_custom_object("kubevirt.io", "v1", gapi.ns, "virtualmachines", "z1-ssvm-1")
        _, guest = guests.guests[(gapi.ns, "z1-ssvm-1")]
        recorded = guest.state_dir / "var/lib/ssvm-agent/simulated"

        def lose_mounts() -> bool:  # the store vanishes from the guest (not stale: a remount cannot help)
            for f in recorded.glob("mount*.json"):
                f.write_text("{}")
            s = gapi.get(c.SSVM_PLURAL, "z1-ssvm-1")
            return (s["spec"].get("recreateRequest") or "").startswith("unhealthy-")

        wait_for("an unhealthy recreate", lose_mounts, timeout=60)
        wait_for("Running and Ready on a new VM", ready_ssvms(gapi, 1), timeout=90)
        vm = custom.get_namespaced_custom_object("kubevirt.io", "v1", gapi.ns, "virtualmachines", "z1-ssvm-1")
        assert vm["metadata"]["uid"] != first_vm["metadata"]["uid"]
        reasons = {e["reason"] for e in gapi.events() if e["involved_object"]["name"] == "z1-ssvm-1"}
        assert {"SSVMUnhealthy", "SSVMRecreated"} <= reasons
        assert gapi.get(c.SSVM_PLURAL, "z1-ssvm-1")["status"]["health"]["healthy"] is True


def test_a_zone_moving_to_another_backend_replaces_its_ssvms_one_at_a_time(gapi, tmp_path):
    """QuickCloud's path the other way round: a zone on KubeVirt moves to external hosts; the rolling
    update replaces one SSVM at a time, each destroyed on KubeVirt and created on a host."""
    hosts, specs = start_external_hosts(operator_key_secret(gapi).public_openssh, tmp_path, "127.92")
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    gapi.store("s2", "z1")
    try:
        with OperatorThread(gapi.ns, None, scan_interval=3.0):
            before = wait_for("2 SSVMs Ready on KubeVirt", ready_ssvms(gapi, 2), timeout=90)
            assert {s["status"]["backendRef"]["backend"] for s in before.values()} == {"kubevirt"}
            gapi.patch(c.ZONE_PLURAL, "z1", {"spec": {"secondaryStorage": {
                "backend": "external", "template": {"external": {"hosts": specs}}}}})
            seen_not_ready, rolling, deadline = [], False, time.monotonic() + 180
            while time.monotonic() < deadline:
                ssvms = gapi.ssvms()
                not_ready = [n for n, s in ssvms.items() if condition(s, "Ready").get("status") != "True"]
                seen_not_ready.append(len(not_ready))
                zone = gapi.get(c.ZONE_PLURAL, "z1")
                rolling = rolling or condition(zone, "SSVMsUpToDate").get("reason") == "RollingUpdate"
                if len(ssvms) == 2 and not not_ready and all(
                        s["status"].get("backendRef", {}).get("backend") == "external" for s in ssvms.values()):
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"the zone did not move to the external hosts: {gapi.ssvms()}")
            assert rolling, "the move went through the rolling update"
            assert max(seen_not_ready) <= 1, seen_not_ready   # one SSVM replaced at a time: the other kept serving
            moved = wait_for("2 SSVMs Ready on the external hosts", ready_ssvms(gapi, 2), timeout=60)
            assert sorted(s["status"]["backendRef"]["name"] for s in moved.values()) == ["host-0", "host-1"]
            vms = gapi.custom.list_namespaced_custom_object("kubevirt.io", "v1", gapi.ns, "virtualmachines")["items"]
            assert vms == [], [v["metadata"]["name"] for v in vms]   # the KubeVirt VMs went with the move
            zone = gapi.get(c.ZONE_PLURAL, "z1")
            assert condition(zone, "SSVMsUpToDate")["status"] == "True", condition(zone, "SSVMsUpToDate")
    finally:
        for host in hosts:
            host.stop()
