"""The libvirt backend's pure builders: domain XML, volumes, config archive, address ranges, metadata."""
from __future__ import annotations

import io
import tarfile
from xml.etree import ElementTree as ET

import pytest

from ssvm_operator.api.zone import LibvirtNetwork, ZoneSpec
from ssvm_operator.backends.libvirt import domain as d
from ssvm_operator.backends.libvirt.connection import redact_uri, uri_with_credentials
from ssvm_operator.model.bootargs import parse_boot_args
from ssvm_operator.model.niclayout import plan_nics
from ssvm_operator.model.spec_hash import material_hash
from ssvm_operator.model.vm import VMRequest

TEMPLATE = {"uri": "qemu:///system", "domainType": "qemu", "storagePool": "ssvm",
            "image": {"kernel": "/var/lib/ssvm/vmlinuz", "initrd": "/var/lib/ssvm/initrd.img", "rootDisk": "/var/lib/ssvm/rootfs.qcow2"},
            "networks": {"control": {"bridge": "cloud0", "cidr": "10.1.0.0/24", "gateway": "10.1.0.1",
                                     "firstAddress": "10.1.0.10", "lastAddress": "10.1.0.12"},
                         "public": {"network": "public-net", "cidr": "192.0.2.0/28", "gateway": "192.0.2.1"}}}
ZONE = {"dns": ["192.0.2.53"], "secondaryStorage": {"backend": "libvirt", "template": {"libvirt": TEMPLATE},
                                                    "offering": {"memoryMiB": 768, "networkRateMbps": 100}}}


def request(**kw) -> VMRequest:
    base = dict(namespace="ns1", name="s-z1-1", uid="u-1", zone_name="z1", role="templateProcessor", running=True,
                zone_spec=ZONE, ssvm_spec={}, host_private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETLINE\n-----END OPENSSH PRIVATE KEY-----",
                operator_public_key="ssh-ed25519 AAAAop operator", spec_hash=material_hash(ZONE, {}))
    return VMRequest(**{**base, **kw})


def test_nics_come_from_the_libvirt_networks_in_cloudstack_order():
    nics = plan_nics(ZONE)
    assert [(n.device_id, n.name, n.network_name, n.default) for n in nics] == [
        (0, "control", "bridge:cloud0", False), (1, "public", "network:public-net", True)]


def test_addresses_are_handed_out_of_each_range_skipping_taken_ones_and_the_gateway():
    nets = d.network_by_nic(d.effective_template(ZONE, {}))
    nics = plan_nics(ZONE)
    got = d.assign_addresses(nics, nets, {"bridge:cloud0": {"10.1.0.10"}})
    assert got == {"control": "10.1.0.11", "public": "192.0.2.2"}   # .1 is the public gateway
    assert d.assign_addresses(nics, nets, {}, kept={"control": "10.1.0.12"})["control"] == "10.1.0.12"
    with pytest.raises(d.TemplateError) as e:
        d.assign_addresses(nics, nets, {"bridge:cloud0": {"10.1.0.10", "10.1.0.11", "10.1.0.12"}})
    assert e.value.reason == "NoFreeAddress" and "cloud0" in str(e.value)


@pytest.mark.parametrize("net, message", [
    ({"bridge": "b", "cidr": "10.0.0.0/24", "firstAddress": "10.0.1.5"}, "outside 10.0.0.0/24"),
    ({"bridge": "b", "cidr": "10.0.0.0/24", "firstAddress": "10.0.0.9", "lastAddress": "10.0.0.5"}, "after lastAddress"),
    ({"bridge": "b", "cidr": "10.0.0.0/24", "gateway": "10.9.0.1"}, "gateway 10.9.0.1 is outside"),
])
def test_a_bad_range_is_a_clear_template_error(net, message):
    with pytest.raises(d.TemplateError) as e:
        d.address_range(LibvirtNetwork.model_validate(net))
    assert e.value.reason == "InvalidLibvirtNetwork" and message in str(e.value)


def test_the_domain_boots_the_kernel_with_the_boot_arguments_and_no_secret():
    record = d.DomainRecord("ns1", "s-z1-1", "z1", "u-1", "abc.def", 0, {"control": "10.1.0.10", "public": "192.0.2.2"},
                            {"control": "bridge:cloud0", "public": "network:public-net"})
    xml = d.build_domain_xml(request(), d.effective_template(ZONE, {}), record, "ssvm")
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu" and root.findtext("name") == "ns1.s-z1-1"
    assert root.findtext("memory") == "768"
    cmdline = root.findtext("os/cmdline")
    args = parse_boot_args(cmdline)
    assert cmdline.startswith("root=/dev/vda ") and args["eth0ip"] == "10.1.0.10" and args["eth1ip"] == "192.0.2.2"
    assert args["eth1mask"] == "255.255.255.240" and args["gateway"] == "192.0.2.1" and args["dns1"] == "192.0.2.53"
    assert "bootproto" not in args   # every address is known: no DHCP
    assert root.findtext("os/kernel") == "/var/lib/ssvm/vmlinuz"
    disks = root.findall("devices/disk")
    assert [x.find("source").get("volume") for x in disks] == ["ns1.s-z1-1-root.qcow2", "ns1.s-z1-1-config.tar"]
    assert disks[1].findtext("serial") == d.CONFIG_SERIAL and disks[1].find("readonly") is not None
    ifaces = root.findall("devices/interface")
    assert [(i.get("type"), i.find("source").attrib) for i in ifaces] == [("bridge", {"bridge": "cloud0"}),
                                                                          ("network", {"network": "public-net"})]
    assert ifaces[0].find("bandwidth/inbound").get("average") == "12500"
    assert "SECRETLINE" not in xml and "PRIVATE KEY" not in xml
    meta = root.find("metadata")[0]
    assert d.parse_metadata(ET.tostring(meta, encoding="unicode")) == record


def test_metadata_round_trips_bare_and_qualified_and_refuses_others():
    record = d.DomainRecord("ns", "a.b", "z", "u", "h.o", 3, {"control": "10.0.0.5"}, {"control": "bridge:br0"})
    assert d.parse_metadata(d.metadata_xml(record)) == record
    assert d.parse_metadata(d.metadata_xml(record, qualified=True)) == record
    assert d.parse_metadata("<other/>") is None and d.parse_metadata("not xml") is None


def test_the_config_archive_carries_the_keys_and_fills_the_volume():
    data = d.config_archive("PRIVATE", "ssh-ed25519 AAAA op")
    assert len(data) == d.CONFIG_BYTES
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["ssh_host_ed25519_key"].mode == 0o600
        assert tar.extractfile("authorized_keys").read() == b"ssh-ed25519 AAAA op\n"


def test_a_template_written_around_admission_is_a_template_error():
    bad = {"secondaryStorage": {"backend": "libvirt", "template": {"libvirt": {"uri": "qemu:///system"}}}}
    with pytest.raises(d.TemplateError) as e:
        d.effective_template(bad, {})
    assert e.value.reason == "InvalidLibvirtTemplate"
    own = {"template": {"libvirt": {**TEMPLATE, "storagePool": "fast",
                                    "networks": {"control": {"bridge": "br9", "cidr": "10.9.0.0/24"}}}}}
    template = d.effective_template(ZONE, own)
    assert template.storage_pool == "fast"   # an SSVM's own template wins, its networks with it
    record = d.DomainRecord("ns1", "s-z1-1", "z1", addresses={"control": "10.9.0.5"}, links={"control": "bridge:br9"})
    xml = d.build_domain_xml(request(ssvm_spec=own), template, record, "fast")
    assert [i.find("source").get("bridge") for i in ET.fromstring(xml).findall("devices/interface")] == ["br9"]
    assert "eth1ip" not in xml and "eth0ip=10.9.0.5" in xml


def test_credentials_go_into_the_uri_and_never_into_messages():
    uri = uri_with_credentials("qemu+libssh://root@kvm1/system", "/run/k/key", "/run/k/known")
    assert "keyfile=/run/k/key" in uri and "known_hosts=/run/k/known" in uri and "no_tty=1" in uri
    assert uri_with_credentials("qemu+ssh://root@kvm1/system", "/k", "/kh").count("known_hosts") == 0   # ssh has no such parameter
    assert uri_with_credentials("qemu:///system", None, None) == "qemu:///system"
    assert redact_uri(uri) == "qemu+libssh://root@kvm1/system"


def test_moving_to_another_backend_changes_the_template_digest():
    kubevirt = {"secondaryStorage": {"template": {"kubevirt": {"containerDiskImage": "r/ssvm:1"}}}}
    moved = {"secondaryStorage": {"backend": "libvirt", "template": {**kubevirt["secondaryStorage"]["template"], "libvirt": TEMPLATE}}}
    assert material_hash(kubevirt, {}).split(".")[0] != material_hash(moved, {}).split(".")[0]
    assert material_hash(kubevirt, {}).split(".")[1] == material_hash(moved, {}).split(".")[1]   # the offering did not change
    assert ZoneSpec.model_validate(moved).secondary_storage.backend == "libvirt"
