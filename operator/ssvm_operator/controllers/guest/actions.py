"""What each SSVM's guest should have applied: CloudStack's setup, firewall and VM-setup commands as
declarative payloads with a desired-content hash, so an action is pushed only when that hash differs
from the one last applied (a new store, a new peer, a changed setting, a new VM instance)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ssvm_operator.api.zone import normalized_site
from ssvm_operator.controllers.guest.hashing import action_hash

SETUP_STORE, FIREWALL, VM_SETUP, REMOVE_STORE = "setup-store", "firewall", "vm-setup", "remove-store"
# Status keys under status.actions, in the order CloudStack sends the commands on an SSVM's start.
FIREWALL_KEY = "firewall"   # its key under status.actions
ACTION_ORDER: tuple[tuple[str, str], ...] = ((SETUP_STORE, "setupStore"), (FIREWALL, FIREWALL_KEY), (VM_SETUP, "vmSetup"))
# States whose public address other SSVMs' firewalls admit.
UP_STATES = frozenset({"Running"})


@dataclass(frozen=True)
class StoreInfo:
    name: str
    url: str
    protocol: str = "nfs"
    nfs_version: str | None = None
    mount_options: tuple[str, ...] = ()
    read_only: bool = False


@dataclass(frozen=True)
class SSVMAddress:
    """An SSVM as the firewall mesh sees it."""

    namespace: str
    name: str
    state: str | None
    public_ip: str | None


@dataclass(frozen=True)
class PlannedAction:
    action: str                      # agent action name
    status_key: str                  # key under status.actions
    payloads: tuple[Mapping[str, Any], ...]  # setup-store: one per NFS store; others: one
    desired_hash: str
    store_names: tuple[str, ...] = ()  # setup-store: which ImageStore each payload belongs to
    store_hashes: tuple[str, ...] = ()  # setup-store: each payload's own content hash (pushed per store)


@dataclass(frozen=True)
class GuestInputs:
    zone_spec: Mapping[str, Any]
    stores: Sequence[StoreInfo]
    peers: Sequence[str]             # public IPs of the other SSVMs that are up
    instance_id: str | None          # the VM instance: a new one (reboot, recreate) re-pushes everything
    copy_password: str | None = None
    copy_password_version: str | None = None  # Secret resourceVersion: hashes the password without embedding it
    link_secret: str | None = None            # the key signed template links are checked with
    link_secret_version: str | None = None
    management_interface: str | None = None
    public_interface: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def address_order(ip: str) -> tuple[int, ...]:
    return tuple(int(p) for p in ip.split("."))


def firewall_peers(self_key: tuple[str, str], ssvms: Iterable[SSVMAddress]) -> list[str]:
    """Public addresses of every other SSVM that is up, in all zones (the mesh), sorted and unique."""
    ips = {s.public_ip for s in ssvms if (s.namespace, s.name) != self_key and s.state in UP_STATES and s.public_ip}
    return sorted(ips, key=address_order)


def _store_payload(store: StoreInfo, zone_nfs_version: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"url": store.url, "readOnly": store.read_only}
    version = store.nfs_version or zone_nfs_version
    if version:
        payload["nfsVersion"] = version
    if store.mount_options:
        payload["mountOptions"] = list(store.mount_options)
    return payload


def _hash(action: str, payloads: Sequence[Mapping[str, Any]], inputs: GuestInputs) -> str:
    # The password enters the hash as its Secret's resourceVersion (or a slow digest), never in clear.
    versions = {k: v for k, v in (("payloads[].copyPassword", inputs.copy_password_version),
                                  ("payloads[].linkSecret", inputs.link_secret_version)) if v} or None
    return action_hash(action, {"payloads": [dict(p) for p in payloads], "instance": inputs.instance_id}, versions)


def plan_guest_actions(inputs: GuestInputs) -> list[PlannedAction]:
    """The three actions in CloudStack's order; setup-store only for NFS stores."""
    ss = inputs.zone_spec.get("secondaryStorage", {})
    nfs = sorted((s for s in inputs.stores if s.protocol == "nfs"), key=lambda s: s.name)
    store_payloads = [_store_payload(s, ss.get("nfsVersion")) for s in nfs]
    firewall: dict[str, Any] = {"peers": list(inputs.peers), "encryptCopy": bool(ss.get("encryptCopy", False))}
    if inputs.public_interface:
        firewall["interface"] = inputs.public_interface
    vm_setup: dict[str, Any] = {"allowedInternalSites": sorted({normalized_site(s) for s in ss.get("allowedInternalSites", [])})}
    mgmt = (inputs.zone_spec.get("networks") or {}).get("management") or {}
    if inputs.management_interface:
        vm_setup["managementInterface"] = inputs.management_interface
    if mgmt.get("gateway"):
        vm_setup["managementGateway"] = mgmt["gateway"]
    if ss.get("httpProxy"):
        vm_setup["httpProxy"] = ss["httpProxy"]
    if inputs.copy_password:
        vm_setup["copyPassword"] = inputs.copy_password
    if inputs.link_secret:
        vm_setup["linkSecret"] = inputs.link_secret
    return [
        PlannedAction(SETUP_STORE, "setupStore", tuple(store_payloads), _hash(SETUP_STORE, store_payloads, inputs),
                      tuple(s.name for s in nfs), tuple(_hash(SETUP_STORE, [p], inputs) for p in store_payloads)),
        PlannedAction(FIREWALL, FIREWALL_KEY, (firewall,), _hash(FIREWALL, [firewall], inputs)),
        PlannedAction(VM_SETUP, "vmSetup", (vm_setup,), _hash(VM_SETUP, [vm_setup], inputs)),
    ]


def actions_to_push(planned: Sequence[PlannedAction], applied: Mapping[str, Mapping[str, Any]] | None) -> list[PlannedAction]:
    """The planned actions whose desired hash differs from the applied one, in order."""
    applied = applied or {}
    return [p for p in planned if (applied.get(p.status_key) or {}).get("appliedHash") != p.desired_hash]


def applied_stores(record: Mapping[str, Any] | None) -> dict[str, tuple[str, str | None]]:
    """store name -> (content hash applied, its URL), from status.actions.setupStore."""
    return {e["store"]: (e["hash"], e.get("url")) for e in (record or {}).get("appliedStores") or [] if e.get("store") and e.get("hash")}
