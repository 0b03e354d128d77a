"""The KubeVirt simulator's state machine, driven and read only through the dev cluster's API."""
from __future__ import annotations

import threading

import pytest
from kubernetes import client as k8s, watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from ssvm_operator.backends.kubevirt.manifests import build_virtual_machine
from ssvm_devcluster.sim_kubevirt import FAIL_ANNOTATION, FAILURE_STATES
from tests.kubevirt.helpers import example, make_request, schema_errors
from tests.kubevirt.waiting import wait_for

G, V = "kubevirt.io", "v1"


class Objects:
    def __init__(self, api_client: k8s.ApiClient, namespace: str) -> None:
        self.custom = k8s.CustomObjectsApi(api_client)
        self.ns = namespace

    def get(self, plural: str, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(G, V, self.ns, plural, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def vm(self, name: str) -> dict | None:
        return self.get("virtualmachines", name)

    def vmi(self, name: str) -> dict | None:
        return self.get("virtualmachineinstances", name)

    def printable(self, name: str) -> str | None:
        vm = self.vm(name)
        return ((vm or {}).get("status") or {}).get("printableStatus")

    def create_vm(self, name: str, running: bool = True) -> dict:
        vm = build_virtual_machine(make_request(example("Zone", "zone1"), name=name, namespace=self.ns, running=running))
        vm["metadata"].pop("ownerReferences")  # no SSVM object here: the VM stands alone
        return self.custom.create_namespaced_custom_object(G, V, self.ns, "virtualmachines", vm)

    def patch_vm(self, name: str, patch: dict) -> None:
        self.custom.patch_namespaced_custom_object(G, V, self.ns, "virtualmachines", name, patch,
                                                   _content_type="application/merge-patch+json")

    def running_vmi(self, name: str) -> dict | None:
        vmi = self.vmi(name)
        return vmi if vmi and (vmi.get("status") or {}).get("phase") == "Running" and self.printable(name) == "Running" else None


@pytest.fixture()
def objs(api_client, namespace) -> Objects:
    return Objects(api_client, namespace)


def _watch_statuses(objs: Objects, name: str, since: str, until: str, sink: list[str]) -> threading.Thread:
    """Collects the VM's printableStatus values from every event after resourceVersion `since`."""
    def run() -> None:
        w = k8s_watch.Watch()
        for event in w.stream(objs.custom.list_namespaced_custom_object, G, V, objs.ns, "virtualmachines",
                              field_selector=f"metadata.name={name}", resource_version=since, timeout_seconds=30):
            status = (event["object"].get("status") or {}).get("printableStatus")
            if status and (not sink or sink[-1] != status):
                sink.append(status)
            if status == until:
                w.stop()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_crds_are_registered(api_client):
    groups = {g.name: [v.version for v in g.versions] for g in k8s.ApisApi(api_client).get_api_versions().groups}
    assert "v1" in groups["kubevirt.io"] and "v1beta1" in groups["cdi.kubevirt.io"]


def test_always_boots_through_provisioning_starting_running(objs):
    seen: list[str] = []
    created = objs.create_vm("vm-boot")
    watcher = _watch_statuses(objs, "vm-boot", created["metadata"]["resourceVersion"], "Running", seen)
    vmi = wait_for(lambda: objs.running_vmi("vm-boot"), "vm-boot running")
    watcher.join(30)
    assert seen == ["Provisioning", "Starting", "Running"]
    assert schema_errors("kubevirt.io/virtualmachineinstance_v1.json", vmi) == []
    assert vmi["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachine"
    ifaces = {i["name"]: i for i in vmi["status"]["interfaces"]}
    assert ifaces["control"]["ipAddress"].startswith("127.77.")
    assert ifaces["public"]["ipAddress"].startswith("203.0.113.")
    assert ifaces["management"]["ipAddress"].startswith("10.1.0.")
    assert ifaces["storage"]["ipAddress"].startswith("198.1")  # the default range
    macs = {i["name"]: i["macAddress"] for i in vmi["spec"]["domain"]["devices"]["interfaces"]}
    assert all(ifaces[n]["mac"] == macs[n] for n in macs)
    assert objs.vm("vm-boot")["status"]["ready"] is True


def test_halted_stops_and_always_starts_again(objs):
    objs.create_vm("vm-stop")
    first = wait_for(lambda: objs.running_vmi("vm-stop"), "vm-stop running")
    objs.patch_vm("vm-stop", {"spec": {"runStrategy": "Halted"}})
    wait_for(lambda: objs.printable("vm-stop") == "Stopped" and objs.vmi("vm-stop") is None, "vm-stop stopped")
    assert objs.vm("vm-stop")["status"]["ready"] is False
    objs.patch_vm("vm-stop", {"spec": {"runStrategy": "Always"}})
    again = wait_for(lambda: objs.running_vmi("vm-stop"), "vm-stop running again")
    assert again["metadata"]["uid"] != first["metadata"]["uid"]


def test_halted_vm_never_gets_an_instance(objs):
    objs.create_vm("vm-halted", running=False)
    wait_for(lambda: objs.printable("vm-halted") == "Stopped", "vm-halted stopped")
    assert objs.vmi("vm-halted") is None


def test_deleted_instance_is_recreated_with_the_same_addresses(objs):
    objs.create_vm("vm-reboot")
    first = wait_for(lambda: objs.running_vmi("vm-reboot"), "vm-reboot running")
    objs.custom.delete_namespaced_custom_object(G, V, objs.ns, "virtualmachineinstances", "vm-reboot")
    second = wait_for(lambda: (v := objs.running_vmi("vm-reboot")) and v["metadata"]["uid"] != first["metadata"]["uid"] and v,
                      "a new vm-reboot instance")
    ips = lambda vmi: {i["name"]: i["ipAddress"] for i in vmi["status"]["interfaces"]}  # noqa: E731
    assert ips(second) == ips(first)


@pytest.mark.parametrize("state", FAILURE_STATES)
def test_failure_annotation_puts_the_vm_in_that_state(objs, state):
    name = f"vm-{state.lower()}"
    objs.create_vm(name)
    wait_for(lambda: objs.running_vmi(name), f"{name} running")
    objs.patch_vm(name, {"metadata": {"annotations": {FAIL_ANNOTATION: state}}})
    wait_for(lambda: objs.printable(name) == state, f"{name} in {state}")
    conditions = {c["type"]: c for c in objs.vm(name)["status"]["conditions"]}
    assert conditions["Failure"]["reason"] == state and conditions["Ready"]["status"] == "False"
    assert objs.vmi(name) is None
    objs.patch_vm(name, {"metadata": {"annotations": {FAIL_ANNOTATION: None}}})
    wait_for(lambda: objs.running_vmi(name), f"{name} recovered")


def test_deleting_the_vm_removes_its_instance(objs):
    objs.create_vm("vm-gone")
    wait_for(lambda: objs.running_vmi("vm-gone"), "vm-gone running")
    objs.custom.delete_namespaced_custom_object(G, V, objs.ns, "virtualmachines", "vm-gone")
    wait_for(lambda: objs.vm("vm-gone") is None and objs.vmi("vm-gone") is None, "vm-gone and its instance deleted")


def test_data_volume_templates_become_imported_datavolumes(objs):
    zone = example("Zone", "zone1")
    zone["spec"]["secondaryStorage"]["template"] = {"kubevirt": {"url": "https://images.example.com/systemvm.qcow2"}}
    vm = build_virtual_machine(make_request(zone, name="vm-dv", namespace=objs.ns))
    vm["metadata"].pop("ownerReferences")
    objs.custom.create_namespaced_custom_object(G, V, objs.ns, "virtualmachines", vm)
    wait_for(lambda: objs.running_vmi("vm-dv"), "vm-dv running")
    dv = objs.custom.get_namespaced_custom_object("cdi.kubevirt.io", "v1beta1", objs.ns, "datavolumes", "vm-dv-rootdisk")
    assert dv["status"]["phase"] == "Succeeded"
    assert dv["metadata"]["ownerReferences"][0]["name"] == "vm-dv"
    assert schema_errors("cdi.kubevirt.io/datavolume_v1beta1.json", dv) == []
