"""Guest action planning: payloads, order, the firewall mesh, and push-only-on-change."""
from __future__ import annotations

import json

from ssvm_operator.controllers.guest.actions import (GuestInputs, SSVMAddress, StoreInfo, actions_to_push, firewall_peers,
                                              plan_guest_actions)

ZONE = {"secondaryStorage": {"encryptCopy": True, "nfsVersion": "3", "allowedInternalSites": ["10.9.8.7", "10.1.0.0/16"]},
        "networks": {"management": {"networkName": "mgmt", "gateway": "10.1.0.1"}}}
STORES = [StoreInfo("b", "nfs://10.2.0.21/export/b", nfs_version="4.1", mount_options=("timeo=600",)),
          StoreInfo("a", "nfs://10.2.0.20/export/a"), StoreInfo("obj", "https://s3/bucket", protocol="s3")]


def inputs(**kw) -> GuestInputs:
    base = dict(zone_spec=ZONE, stores=STORES, peers=["203.0.113.5"], instance_id="vmi-1",
                copy_password="hunter2-secret", copy_password_version="41")
    return GuestInputs(**{**base, **kw})


def test_actions_in_cloudstack_order_and_only_nfs_stores_set_up():
    planned = plan_guest_actions(inputs())
    assert [p.action for p in planned] == ["setup-store", "firewall", "vm-setup"]
    setup = planned[0]
    assert setup.store_names == ("a", "b")
    assert setup.payloads[0] == {"url": "nfs://10.2.0.20/export/a", "readOnly": False, "nfsVersion": "3"}
    assert setup.payloads[1]["nfsVersion"] == "4.1" and setup.payloads[1]["mountOptions"] == ["timeo=600"]
    assert planned[1].payloads[0] == {"peers": ["203.0.113.5"], "encryptCopy": True}
    vm = planned[2].payloads[0]
    assert vm["allowedInternalSites"] == ["10.1.0.0/16", "10.9.8.7/32"]
    assert vm["managementGateway"] == "10.1.0.1" and vm["copyPassword"] == "hunter2-secret"


def test_hashes_never_embed_the_password_and_follow_its_secret_version():
    planned = plan_guest_actions(inputs())
    dumped = json.dumps([p.desired_hash for p in planned])
    assert "hunter2" not in dumped
    rotated = plan_guest_actions(inputs(copy_password="other", copy_password_version="42"))
    assert rotated[2].desired_hash != planned[2].desired_hash
    assert rotated[:2] == planned[:2]


def test_only_changed_actions_are_pushed():
    planned = plan_guest_actions(inputs())
    applied = {p.status_key: {"appliedHash": p.desired_hash} for p in planned}
    assert actions_to_push(planned, applied) == []
    assert actions_to_push(planned, None) == planned
    new_peer = plan_guest_actions(inputs(peers=["203.0.113.5", "203.0.113.9"]))
    assert [p.action for p in actions_to_push(new_peer, applied)] == ["firewall"]
    new_store = plan_guest_actions(inputs(stores=STORES + [StoreInfo("c", "nfs://10.2.0.22/export/c")]))
    assert [p.action for p in actions_to_push(new_store, applied)] == ["setup-store"]


def test_new_vm_instance_pushes_everything_again():
    planned = plan_guest_actions(inputs())
    applied = {p.status_key: {"appliedHash": p.desired_hash} for p in planned}
    rebooted = plan_guest_actions(inputs(instance_id="vmi-2"))
    assert [p.action for p in actions_to_push(rebooted, applied)] == ["setup-store", "firewall", "vm-setup"]


def test_mesh_admits_every_other_up_ssvm_in_all_zones():
    ssvms = [SSVMAddress("ns", "z1-0", "Running", "203.0.113.10"), SSVMAddress("ns", "z1-1", "Running", "203.0.113.9"),
             SSVMAddress("other", "z2-0", "Running", "198.51.100.4"), SSVMAddress("ns", "z1-2", "Starting", "203.0.113.11"),
             SSVMAddress("ns", "z1-3", "Running", None), SSVMAddress("ns", "z1-4", "Stopped", "203.0.113.12")]
    assert firewall_peers(("ns", "z1-0"), ssvms) == ["198.51.100.4", "203.0.113.9"]
    assert firewall_peers(("ns", "z9-9"), ssvms) == ["198.51.100.4", "203.0.113.9", "203.0.113.10"]
