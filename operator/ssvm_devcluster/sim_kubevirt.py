"""KubeVirt simulator: plays virt-controller for the dev cluster, through its HTTP API only.

For each VirtualMachine: runStrategy Always creates a VirtualMachineInstance and moves the VM's
printableStatus Provisioning -> Starting -> Running (a boot delay split over the two steps), giving
every interface an address (the pod/control one from a 127.x loopback range, so simulated guests
can listen there; Multus ones from a range per network); Halted deletes the instance (Stopping ->
Stopped); a deleted instance of an Always VM is recreated (a reboot). The annotation
`sim.ssvm.io/fail: <state>` on a VM puts it in that failure state until removed.
It also registers the KubeVirt and CDI CRDs when it starts.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from ssvm_devcluster.kubevirt_crds import kubevirt_crds
from ssvm_devcluster.ranges import lease_control_range
from ssvm_devcluster.simulators import ApiClient, register

log = logging.getLogger(__name__)

FAIL_ANNOTATION = "sim.ssvm.io/fail"
FAILURE_STATES = ("ErrImagePull", "ImagePullBackOff", "ErrorUnschedulable", "CrashLoopBackOff", "DataVolumeError")
VMS = "/apis/kubevirt.io/v1/virtualmachines"
VMIS = "/apis/kubevirt.io/v1/virtualmachineinstances"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
NODE_NAME = "devcluster-node-1"


def _ns_path(plural: str, namespace: str, name: str = "") -> str:
    return f"/apis/kubevirt.io/v1/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


@dataclass
class KubeVirtSimConfig:
    boot_delay: float = 1.0                       # seconds from VMI creation to Running (half Provisioning, half Starting)
    # pod network (control NIC): loopback, so simulated guests can bind; None leases a free one at start (ranges.py)
    control_range: str | None = "127.77.0.0/16"
    network_ranges: dict[str, str] = field(default_factory=dict)  # Multus networkName -> CIDR
    default_range: str = "198.18.0.0/15"          # Multus networks not listed (RFC 2544 benchmarking range)


class _Addresses:
    """Stable addresses per (namespace, vm, interface): a rebooted VM keeps them, a deleted one frees them."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str, str], str] = {}
        self.used: set[str] = set()

    def get(self, key: tuple[str, str, str], cidr: str) -> str:
        if key in self.by_key:
            return self.by_key[key]
        for host in ipaddress.ip_network(cidr, strict=False).hosts():
            ip = str(host)
            if ip not in self.used and not ip.endswith(".1"):  # .1 looks like a gateway
                self.used.add(ip)
                self.by_key[key] = ip
                return ip
        raise RuntimeError(f"address range {cidr} is exhausted")

    def adopt(self, key: tuple[str, str, str], ip: str) -> None:
        self.by_key[key] = ip
        self.used.add(ip)

    def release(self, namespace: str, vm: str) -> None:
        for key in [k for k in self.by_key if k[:2] == (namespace, vm)]:
            self.used.discard(self.by_key.pop(key))


class KubeVirtSimulator:
    name = "kubevirt"

    def __init__(self, config: KubeVirtSimConfig | None = None) -> None:
        self.config = config or KubeVirtSimConfig()
        self.addresses = _Addresses()
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._due: dict[tuple[str, str], float] = {}  # when the VM's instance may take its next step
        self._datavolumes: dict[tuple[str, str], set[str]] = {}  # VM -> DataVolumes created (or found) for it

    # --- scheduling ---
    def _enqueue(self, key: tuple[str, str]) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _later(self, key: tuple[str, str], delay: float) -> None:
        self._due[key] = time.monotonic() + delay
        asyncio.get_running_loop().call_later(max(delay, 0.0), self._enqueue, key)

    def _ready_for_step(self, key: tuple[str, str]) -> bool:
        due = self._due.get(key)
        return due is None or time.monotonic() >= due

    async def run(self, api: ApiClient, stop: asyncio.Event) -> None:
        lease = lease_control_range() if self.config.control_range is None else None
        if lease is not None:
            self.config.control_range = lease.cidr
            log.info("simulated control addresses from %s", lease.cidr)
        try:
            await self._run(api, stop)
        finally:
            if lease is not None:
                lease.release()
                self.config.control_range = None

    async def _run(self, api: ApiClient, stop: asyncio.Event) -> None:
        await self._register_crds(api)
        await self._adopt_addresses(api)
        tasks = [asyncio.create_task(self._watch(api, VMS, stop), name="kubevirt-sim-watch-vms"),
                 asyncio.create_task(self._watch(api, VMIS, stop), name="kubevirt-sim-watch-vmis"),
                 asyncio.create_task(self._work(api), name="kubevirt-sim-worker")]
        try:
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)

    async def _register_crds(self, api: ApiClient) -> None:
        for crd in kubevirt_crds():
            code, body = await api.create(CRDS, crd)
            if code not in (201, 409):
                raise RuntimeError(f"registering {crd['metadata']['name']} failed: {code} {body}")
        # A real API server serves a new CRD's paths a moment after creating it (once Established).
        for _ in range(100):
            if (await api.get(VMS))[0] == 200 and (await api.get(VMIS))[0] == 200:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("the KubeVirt CRDs were registered but are not served")

    async def _adopt_addresses(self, api: ApiClient) -> None:
        """After a restart, keep the addresses instances already have."""
        code, body = await api.get(VMIS)
        for vmi in (body.get("items") or []) if code == 200 else []:
            meta = vmi["metadata"]
            for iface in (vmi.get("status") or {}).get("interfaces") or []:
                if iface.get("ipAddress"):
                    self.addresses.adopt((meta["namespace"], meta["name"], iface["name"]), iface["ipAddress"])

    async def _watch(self, api: ApiClient, path: str, stop: asyncio.Event) -> None:
        async for event in api.watch(path, stop=stop):
            meta = event["object"].get("metadata") or {}
            if meta.get("namespace") and meta.get("name"):
                self._enqueue((meta["namespace"], meta["name"]))

    async def _work(self, api: ApiClient) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                await self.reconcile(api, *key)
            except Exception:  # noqa: BLE001 - one VM's trouble must not stop the others
                log.exception("kubevirt simulator: reconciling %s/%s failed; retrying", *key)
                self._later(key, 0.5)

    # --- the state machine ---
    async def reconcile(self, api: ApiClient, namespace: str, name: str) -> None:
        key = (namespace, name)
        code, vm = await api.get(_ns_path("virtualmachines", namespace, name))
        code_i, vmi = await api.get(_ns_path("virtualmachineinstances", namespace, name))
        vmi = vmi if code_i == 200 else None
        if code == 404 or (code == 200 and vm["metadata"].get("deletionTimestamp")):
            if vmi is not None:
                await api.delete(_ns_path("virtualmachineinstances", namespace, name))
            self.addresses.release(namespace, name)
            self._due.pop(key, None)
            self._datavolumes.pop(key, None)
            return
        if code != 200:
            raise RuntimeError(f"get VM {namespace}/{name}: {code}")
        spec = vm.get("spec") or {}
        await self._ensure_datavolumes(api, vm)
        run_strategy = spec.get("runStrategy") or ("Always" if spec.get("running") else "Halted")
        failure = (vm["metadata"].get("annotations") or {}).get(FAIL_ANNOTATION)
        if failure:
            if vmi is not None:
                await api.delete(_ns_path("virtualmachineinstances", namespace, name))
            await self._vm_status(api, vm, failure, ready=False, created=False, failure=failure)
            return
        if run_strategy == "Manual":
            return  # only explicit start/stop requests act on a Manual VM; the simulator makes none
        if run_strategy == "Halted":
            if vmi is not None:
                await self._vm_status(api, vm, "Stopping", ready=False, created=True)
                await api.delete(_ns_path("virtualmachineinstances", namespace, name))
                self._enqueue(key)
                return
            await self._vm_status(api, vm, "Stopped", ready=False, created=False)
            return
        if vmi is None or vmi["metadata"].get("deletionTimestamp"):
            if vmi is None:
                await self._create_vmi(api, vm)
            await self._vm_status(api, vm, "Provisioning", ready=False, created=True)
            self._later(key, self.config.boot_delay / 2)
            return
        phase = (vmi.get("status") or {}).get("phase") or "Pending"
        # KubeVirt's RestartRequired: the VM's template changed under a running instance
        restart = (((spec.get("template") or {}).get("spec") or {"domain": {"devices": {}}}) != (vmi.get("spec") or {}))
        if phase == "Running":
            await self._vm_status(api, vm, "Running", ready=True, created=True, restart_required=restart)
            return
        if not self._ready_for_step(key):
            return  # a timer is pending for this step
        if phase in ("Pending", "Scheduling"):
            await self._vmi_status(api, vmi, {"phase": "Scheduled", "nodeName": NODE_NAME})
            await self._vm_status(api, vm, "Starting", ready=False, created=True)
            self._later(key, self.config.boot_delay / 2)
        elif phase == "Scheduled":
            await self._vmi_status(api, vmi, self._running_status(vm))
            await self._vm_status(api, vm, "Running", ready=True, created=True, restart_required=restart)
            self._due.pop(key, None)

    async def _ensure_datavolumes(self, api: ApiClient, vm: dict[str, Any]) -> None:
        """CDI's part, done at once: each dataVolumeTemplates entry becomes a DataVolume that has imported."""
        meta = vm["metadata"]
        done = self._datavolumes.setdefault((meta["namespace"], meta["name"]), set())
        for template in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
            name = (template.get("metadata") or {}).get("name")
            if not name or name in done:
                continue
            body = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                    "metadata": {"name": name, "namespace": meta["namespace"], "labels": (template.get("metadata") or {}).get("labels") or {},
                                 "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": meta["name"],
                                                      "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}]},
                    "spec": template.get("spec") or {}}
            path = f"/apis/cdi.kubevirt.io/v1beta1/namespaces/{meta['namespace']}/datavolumes"
            code, resp = await api.create(path, body)
            if code == 201:
                await api.patch(f"{path}/{name}/status", {"status": {"phase": "Succeeded", "progress": "100.0%"}})
            elif code != 409:
                raise RuntimeError(f"create DataVolume {meta['namespace']}/{name}: {code} {resp}")
            done.add(name)

    async def _create_vmi(self, api: ApiClient, vm: dict[str, Any]) -> None:
        meta = vm["metadata"]
        template = (vm.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        body = {
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {
                "name": meta["name"], "namespace": meta["namespace"],
                "labels": {**(tmeta.get("labels") or {}), "kubevirt.io/created-by": meta.get("uid", "")},
                "annotations": tmeta.get("annotations") or {},
                "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": meta["name"],
                                     "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": template.get("spec") or {"domain": {"devices": {}}},
        }
        if not body["metadata"]["annotations"]:
            del body["metadata"]["annotations"]
        code, resp = await api.create(_ns_path("virtualmachineinstances", meta["namespace"]), body)
        if code == 201:
            await self._vmi_status(api, resp, {"phase": "Pending"})
        elif code != 409:
            raise RuntimeError(f"create VMI {meta['namespace']}/{meta['name']}: {code} {resp}")

    def _running_status(self, vm: dict[str, Any]) -> dict[str, Any]:
        meta = vm["metadata"]
        tspec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        networks = {n["name"]: n for n in tspec.get("networks") or []}
        interfaces = []
        for i, iface in enumerate(((tspec.get("domain") or {}).get("devices") or {}).get("interfaces") or []):
            network = networks.get(iface["name"], {})
            if "pod" in network:
                cidr = self.config.control_range
            else:
                nad = (network.get("multus") or {}).get("networkName", iface["name"])
                cidr = self.config.network_ranges.get(nad, self.config.default_range)
            ip = self.addresses.get((meta["namespace"], meta["name"], iface["name"]), cidr)
            digest = zlib.crc32(f"{meta.get('uid')}/{i}".encode()).to_bytes(4, "big")
            mac = iface.get("macAddress") or "02:00:" + ":".join(f"{b:02x}" for b in digest)
            interfaces.append({"name": iface["name"], "interfaceName": f"eth{i}", "ipAddress": ip, "ipAddresses": [ip],
                               "mac": mac, "infoSource": "domain, guest-agent", "linkState": "up"})
        return {"phase": "Running", "nodeName": NODE_NAME, "interfaces": interfaces, "qosClass": "Burstable",
                "conditions": [{"type": "Ready", "status": "True"}]}

    async def _vmi_status(self, api: ApiClient, vmi: dict[str, Any], status: dict[str, Any]) -> None:
        meta = vmi["metadata"]
        code, body = await api.patch(_ns_path("virtualmachineinstances", meta["namespace"], meta["name"]) + "/status",
                                     {"status": status})
        if code not in (200, 404):
            raise RuntimeError(f"VMI status {meta['namespace']}/{meta['name']}: {code} {body}")

    async def _vm_status(self, api: ApiClient, vm: dict[str, Any], printable: str, *, ready: bool, created: bool,
                         failure: str | None = None, restart_required: bool = False) -> None:
        current = vm.get("status") or {}
        conditions = [{"type": "Ready", "status": "True" if ready else "False",
                       "reason": "" if ready else (failure or printable)}]
        if restart_required:
            conditions.append({"type": "RestartRequired", "status": "True", "reason": "",
                               "message": "a non-live-updatable field was changed in the template spec"})
        if failure:
            conditions.append({"type": "Failure", "status": "True", "reason": failure,
                               "message": f"simulated failure {failure} (annotation {FAIL_ANNOTATION})"})
        status = {"printableStatus": printable, "ready": ready, "created": created, "conditions": conditions}
        if all(current.get(k) == v for k, v in status.items()):
            return  # unchanged: no write, no event, no loop
        meta = vm["metadata"]
        code, body = await api.patch(_ns_path("virtualmachines", meta["namespace"], meta["name"]) + "/status",
                                     {"status": status})
        if code not in (200, 404):
            raise RuntimeError(f"VM status {meta['namespace']}/{meta['name']}: {code} {body}")


@register("kubevirt")
def _factory() -> KubeVirtSimulator:
    return KubeVirtSimulator(KubeVirtSimConfig(control_range=None))   # a free range per dev cluster
