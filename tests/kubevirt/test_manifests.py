"""VirtualMachine and Secret builders: shared schemas, webhook rules, placement, resources, secrets."""
from __future__ import annotations

from ssvm_operator.model.redaction import REDACTED

import base64
import json

import pytest
import yaml

from ssvm_operator.backends.kubevirt.manifests import (ManifestError, build_cloudinit_secret, build_virtual_machine,
                                                       secret_name)
from ssvm_operator.backends.kubevirt.userdata import (AGENT_ZIPAPP_PATH, BOOT_ARGS_PATH, AgentPayload,
                                                      redact_user_data, user_data_document)
from ssvm_operator.backends.kubevirt.webhook import webhook_violations
from tests.kubevirt.helpers import example, keys, make_request, schema_errors

AGENT = AgentPayload(zipapp=b"#!/usr/bin/env python3\nPK-fake-zipapp")


def _zone(name="zone1", **secondary_storage):
    zone = example("Zone", name)
    zone["spec"]["secondaryStorage"].update(secondary_storage)
    return zone


def _tspec(vm):
    return vm["spec"]["template"]["spec"]


@pytest.mark.parametrize("zone_name", ["zone1", "zone2"])
@pytest.mark.parametrize("running", [True, False])
def test_vm_validates_against_schema_and_webhook_rules(zone_name, running):
    vm = build_virtual_machine(make_request(example("Zone", zone_name), running=running))
    assert schema_errors("kubevirt.io/virtualmachine_v1.json", vm) == []
    assert webhook_violations(vm) == []
    assert vm["spec"]["runStrategy"] == ("Always" if running else "Halted")
    assert "running" not in vm["spec"]


def test_webhook_rules_catch_what_the_schema_cannot():
    vm = build_virtual_machine(make_request(example("Zone", "zone1")))
    vm["spec"]["running"] = True
    _tspec(vm)["networks"][1]["name"] = "mgmt-renamed"
    _tspec(vm)["domain"]["devices"]["disks"].append({"name": "orphan", "disk": {"bus": "virtio"}})
    del vm["spec"]["runStrategy"]
    assert schema_errors("kubevirt.io/virtualmachine_v1.json", vm) == []  # the schema is blind to all of it
    problems = "\n".join(webhook_violations(vm))
    for needle in ("spec.runStrategy", "spec.running", "interfaces[1].name", "networks[1].name", "disks[2].name"):
        assert needle in problems


def test_metadata_owner_labels_namespace():
    request = make_request(example("Zone", "zone1"), name="zone1-ssvm-3", namespace="cloud", role="commandExecutor")
    vm = build_virtual_machine(request)
    meta = vm["metadata"]
    assert (meta["name"], meta["namespace"]) == ("zone1-ssvm-3", "cloud")
    assert meta["labels"]["ssvm.io/ssvm"] == "zone1-ssvm-3" and meta["labels"]["ssvm.io/zone"] == "zone1"
    assert meta["labels"]["ssvm.io/role"] == "commandExecutor"
    [owner] = meta["ownerReferences"]
    assert owner == {"apiVersion": "ssvm.io/v1alpha1", "kind": "SecondaryStorageVM", "name": "zone1-ssvm-3",
                     "uid": request.uid, "controller": True, "blockOwnerDeletion": True}
    assert vm["spec"]["template"]["metadata"]["labels"]["ssvm.io/ssvm"] == "zone1-ssvm-3"


def test_advanced_zone_networks_and_default_on_public():
    vm = build_virtual_machine(make_request(example("Zone", "zone1")))
    nets = _tspec(vm)["networks"]
    assert nets[0] == {"name": "control", "pod": {}}
    assert [(n["name"], n["multus"]["networkName"]) for n in nets[1:]] == [
        ("management", "mgmt-net"), ("public", "public-net"), ("storage", "storage-net")]
    ifaces = _tspec(vm)["domain"]["devices"]["interfaces"]
    assert "masquerade" in ifaces[0] and all("bridge" in i for i in ifaces[1:])
    assert [i["name"] for i in ifaces] == [n["name"] for n in nets]


def test_basic_zone_default_on_guest_network_and_network_data_routes():
    request = make_request(example("Zone", "zone2"), name="zone2-ssvm-1")
    vm = build_virtual_machine(request)
    assert [n["name"] for n in _tspec(vm)["networks"]] == ["control", "guest"]
    assert _tspec(vm)["networks"][1]["multus"]["networkName"] == "guest-net"
    network_data = yaml.safe_load(build_cloudinit_secret(request, AGENT)["stringData"]["networkdata"])
    eth = network_data["ethernets"]
    assert "dhcp4-overrides" in eth["eth0"] and "dhcp4-overrides" not in eth["eth1"]  # default route via guest
    macs = {i["name"]: i["macAddress"] for i in _tspec(vm)["domain"]["devices"]["interfaces"]}
    assert eth["eth1"]["match"]["macaddress"] == macs["guest"]


def test_unconfigured_networks_ride_the_pod_network():
    zone = example("Zone", "zone2")
    zone["spec"]["networks"] = {}
    vm = build_virtual_machine(make_request(zone))
    assert _tspec(vm)["networks"] == [{"name": "control", "pod": {}}]


@pytest.mark.parametrize("offering, requests, limits", [
    ({"cpuCores": 2, "cpuSpeedMHz": 1000, "memoryMiB": 2048}, {"cpu": "2000m", "memory": "2048Mi"}, None),
    ({"cpuCores": 1, "cpuSpeedMHz": 500, "memoryMiB": 512, "limitCpuUse": True},
     {"cpu": "500m", "memory": "512Mi"}, {"cpu": "500m", "memory": "512Mi"}),
])
def test_offering_to_resources(offering, requests, limits):
    vm = build_virtual_machine(make_request(_zone(offering=offering)))
    domain = _tspec(vm)["domain"]
    assert domain["cpu"]["cores"] == offering["cpuCores"]
    assert domain["resources"]["requests"] == requests
    assert domain["resources"].get("limits") == limits


def test_ssvm_offering_override_and_network_rate():
    request = make_request(example("Zone", "zone1"), ssvm_spec={
        "zoneRef": "zone1", "offering": {"cpuCores": 4, "memoryMiB": 4096, "networkRateMbps": 200}})
    vm = build_virtual_machine(request)
    assert _tspec(vm)["domain"]["cpu"]["cores"] == 4
    assert vm["spec"]["template"]["metadata"]["annotations"]["kubernetes.io/egress-bandwidth"] == "200M"


def test_container_disk_root_for_local_offering():
    vm = build_virtual_machine(make_request(example("Zone", "zone1")))
    root = _tspec(vm)["volumes"][0]
    assert root["containerDisk"]["image"] == "registry.example.com/cloudstack/systemvm:4.19.0"
    assert "dataVolumeTemplates" not in vm["spec"]


@pytest.mark.parametrize("template, source", [
    ({"url": "https://images.example.com/systemvm.qcow2"}, {"http": {"url": "https://images.example.com/systemvm.qcow2"}}),
    ({"url": "docker://registry.example.com/systemvm:4.19"}, {"registry": {"url": "docker://registry.example.com/systemvm:4.19"}}),
    ({"containerDiskImage": "registry.example.com/systemvm:4.19"}, {"registry": {"url": "docker://registry.example.com/systemvm:4.19"}}),
])
def test_shared_root_disk_imports_with_cdi(template, source):
    zone = _zone(offering={"rootDisk": "shared", "storageClass": "ceph-rbd", "rootDiskSizeGiB": 8},
                 template={"kubevirt": template})
    vm = build_virtual_machine(make_request(zone, name="zone1-ssvm-2"))
    assert schema_errors("kubevirt.io/virtualmachine_v1.json", vm) == [] and webhook_violations(vm) == []
    [dvt] = vm["spec"]["dataVolumeTemplates"]
    assert dvt["spec"]["source"] == source
    assert dvt["spec"]["storage"]["storageClassName"] == "ceph-rbd"
    assert dvt["spec"]["storage"]["resources"]["requests"]["storage"] == "8Gi"
    assert _tspec(vm)["volumes"][0]["dataVolume"]["name"] == dvt["metadata"]["name"] == "zone1-ssvm-2-rootdisk"
    datavolume = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", **dvt}
    assert schema_errors("cdi.kubevirt.io/datavolume_v1beta1.json", datavolume) == []


def test_no_template_is_a_manifest_error():
    zone = example("Zone", "zone1")
    del zone["spec"]["secondaryStorage"]["template"]
    with pytest.raises(ManifestError) as err:
        build_virtual_machine(make_request(zone))
    assert err.value.reason == "TemplateMissing"


def test_cloud_init_only_through_the_owned_secret():
    request = make_request(example("Zone", "zone1"), vm_password="very-secret-vm-password")
    vm = build_virtual_machine(request)
    [ci] = [v["cloudInitNoCloud"] for v in _tspec(vm)["volumes"] if "cloudInitNoCloud" in v]
    assert ci == {"secretRef": {"name": secret_name(request)}, "networkDataSecretRef": {"name": secret_name(request)}}
    host, operator = keys()
    text = json.dumps(vm)
    secret_material = ["very-secret-vm-password", host.private_openssh.splitlines()[1], "PRIVATE KEY",
                       base64.b64encode(AGENT.zipapp).decode(), "vmpassword"]
    for needle in secret_material:
        assert needle not in text
    secret = build_cloudinit_secret(request, AGENT)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == request.uid
    assert "very-secret-vm-password" in secret["stringData"]["userdata"]


def test_user_data_installs_keys_sshd_agent_and_boot_args():
    request = make_request(example("Zone", "zone1"))
    user_data = build_cloudinit_secret(request, AGENT)["stringData"]["userdata"]
    assert user_data.startswith("#cloud-config\n")
    doc = yaml.safe_load(user_data)
    host, operator = keys()
    assert doc["ssh_keys"]["ed25519_private"].strip() == host.private_openssh.strip()
    assert doc["ssh_keys"]["ed25519_public"] == host.public_openssh and doc["ssh_genkeytypes"] == []
    files = {f["path"]: f for f in doc["write_files"]}
    assert files["/root/.ssh/authorized_keys"]["content"].strip() == operator.public_openssh
    assert "Port 3922" in files["/etc/ssh/sshd_config.d/10-ssvm.conf"]["content"]
    assert files[BOOT_ARGS_PATH]["content"].strip() == request.boot_args
    assert base64.b64decode(files[AGENT_ZIPAPP_PATH]["content"]) == AGENT.zipapp
    assert "ExecStart=/usr/local/bin/ssvm-agent serve" in files["/etc/systemd/system/ssvm-agent.service"]["content"]
    assert ["systemctl", "enable", "--now", "ssvm-agent.service"] in doc["runcmd"]


def test_user_data_with_pip_agent_and_redaction():
    host, operator = keys()
    doc = user_data_document(boot_args="type=secstorage vmpassword=pw", host_private_key=host.private_openssh,
                             host_public_key=host.public_openssh, operator_public_key=operator.public_openssh,
                             agent=AgentPayload(pip_spec="ssvm-operator==0.1.0"))
    assert ["python3", "-m", "pip", "install", "--break-system-packages", "ssvm-operator==0.1.0"] in doc["runcmd"]
    redacted = json.dumps(redact_user_data(doc, f"type=secstorage vmpassword={REDACTED}"))
    assert "PRIVATE KEY" not in redacted and "vmpassword=pw" not in redacted
    with pytest.raises(ValueError):
        AgentPayload()
