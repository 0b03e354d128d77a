"""Boot arguments: CloudStack's set, NIC placement per zone type, redaction."""
from __future__ import annotations

from ssvm_operator.model.redaction import REDACTED

from ssvm_operator.model.bootargs import build_boot_args, parse_boot_args, redact_boot_args
from ssvm_operator.model.niclayout import plan_nics
from tests.kubevirt.helpers import admitted_zone_spec, example


def _args(zone_doc, **kw):
    spec = admitted_zone_spec(zone_doc)
    return parse_boot_args(build_boot_args(name="s-1", zone_name=zone_doc["metadata"]["name"], role="templateProcessor",
                                           zone_spec=spec, **kw))


def test_advanced_zone_carries_cloudstack_set():
    args = _args(example("Zone", "zone1"))
    assert args["template"] == "domP" and args["type"] == "secstorage"
    assert (args["host"], args["port"]) == ("10.1.0.10", "8250")
    assert (args["name"], args["zone"], args["role"], args["mtu"]) == ("s-1", "zone1", "templateProcessor", "1500")
    assert args["sslcopy"] == "true"  # encryptCopy
    # eth0 control (pod), eth1 management, eth2 public (default), eth3 storage
    assert args["private.network.device"] == "eth1" and args["public.network.device"] == "eth2"
    assert args["gateway"] == "203.0.113.1"  # the public network's: the default NIC's gateway
    assert (args["mgmtcidr"], args["localgw"]) == ("10.1.0.0/24", "10.1.0.1")
    assert (args["storagenetmask"], args["storagegateway"]) == ("255.255.255.0", "10.2.0.1")
    assert all(f"eth{i}ip" in args and f"eth{i}mask" in args for i in range(4))
    assert (args["dns1"], args["dns2"], args["internaldns1"]) == ("203.0.113.53", "198.51.100.53", "10.1.0.2")
    assert "internaldns2" not in args
    assert args["proxy"] == "http://proxy.example.com:3128" and args["nfsVersion"] == "3"
    assert args["bootproto"] == "dhcp"  # addresses unknown when booting: DHCP/IPAM


def test_basic_zone_default_nic_on_guest_network():
    args = _args(example("Zone", "zone2"))
    nics = plan_nics(admitted_zone_spec(example("Zone", "zone2")))
    assert [(n.name, n.default) for n in nics] == [("control", False), ("guest", True)]
    assert args["public.network.device"] == "eth1" and args["gateway"] == "10.3.0.1"
    assert args["private.network.device"] == "eth0"  # no management network: it rides the pod network
    assert args["sslcopy"] == "false" and "proxy" not in args and "nfsVersion" not in args


def test_security_group_advanced_zone_uses_guest_network():
    zone = example("Zone", "zone1")
    zone["spec"]["securityGroupsEnabled"] = True
    zone["spec"]["networks"]["guest"] = {"networkName": "sg-net", "gateway": "10.5.0.1", "cidr": "10.5.0.0/24"}
    nics = plan_nics(admitted_zone_spec(zone))
    assert [n.name for n in nics] == ["control", "management", "guest", "storage"]
    assert [n.name for n in nics if n.default] == ["guest"]
    assert _args(zone)["gateway"] == "10.5.0.1"


def test_known_addresses_replace_zero():
    args = _args(example("Zone", "zone1"), addresses={"public": "203.0.113.7", "storage": "10.2.0.9"})
    assert (args["eth2ip"], args["eth2mask"]) == ("203.0.113.7", "255.255.255.0")
    assert args["storageip"] == "10.2.0.9"
    assert args["eth1ip"] == "0.0.0.0"


def test_redaction_hides_password_and_url_credentials():
    line = build_boot_args(name="s-1", zone_name="z", role="templateProcessor",
                           zone_spec=admitted_zone_spec(example("Zone", "zone2")), vm_password="hunter2-secret")
    assert "vmpassword=hunter2-secret" in line
    redacted = redact_boot_args(line + " proxy=http://user:pw@proxy:3128 sslpassword=abc")
    assert "hunter2" not in redacted and "pw@" not in redacted and "abc" not in redacted
    assert f"vmpassword={REDACTED}" in redacted and "type=secstorage" in redacted
