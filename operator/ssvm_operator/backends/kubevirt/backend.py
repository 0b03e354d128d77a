"""The KubeVirt VM backend: carries out ensure/start/stop/reboot/destroy on `kubevirt.io/v1`
VirtualMachines through the operator's Kubernetes client, and observes them with their instances.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from ssvm_operator.backends.base import BackendError
from ssvm_operator.backends.kubevirt import models as m
from ssvm_operator.backends.kubevirt.cache import ABSENT, VMCache
from ssvm_operator.backends.kubevirt.manifests import ManifestError, build_cloudinit_secret, build_virtual_machine, effective_template, secret_name
from ssvm_operator.backends.kubevirt.observe import observe_objects
from ssvm_operator.backends.kubevirt.userdata import AgentPayload
from ssvm_operator.kube.client import ApiError, KubeClient
from ssvm_operator.model.vm import BackendReadiness, ObservedVM, VMRequest

log = logging.getLogger(__name__)
MULTUS_GROUP = "k8s.cni.cncf.io"
KV = {"group": m.KUBEVIRT_GROUP, "version": m.KUBEVIRT_VERSION}


class KubeVirtBackend:
    """VMBackend for KubeVirt. `client` is the operator's KubeClient (or a `kubernetes.client.ApiClient`
    to build one from); `agent` is what cloud-init installs in the guest (the bundled zipapp when None);
    `cache` holds what the operator's watch of VMs and instances showed (without it, every look is a GET)."""

    name = "kubevirt"

    def __init__(self, client: KubeClient | Any = None, *, agent: AgentPayload | None = None, timeout: float = 15.0,
                 cache: VMCache | None = None) -> None:
        self.kube = client if isinstance(client, KubeClient) else KubeClient(client, timeout=timeout)
        self._agent = agent
        self.cache = cache or VMCache(get_ttl=0.0)   # fed by no watch: every look is a GET
        self._observed: dict[tuple[str, str], tuple[tuple[str | None, str | None], ObservedVM]] = {}   # the last reading, by the versions it read

    @property
    def agent(self) -> AgentPayload:
        if self._agent is None:  # packed lazily: only ensure needs it
            self._agent = AgentPayload.bundled()
        return self._agent

    async def _patch_vm(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        try:
            patched = await self.kube.patch(m.VM_PLURAL, namespace, name, patch, **KV)
            self.cache.wrote(m.VM_PLURAL, patched)
            self.cache.dropped(m.VMI_PLURAL, namespace, name)   # a start or stop changes the instance: read it again
            return patched
        except ApiError as e:
            if e.status == 404:
                raise BackendError("VMAbsent", f"VirtualMachine {namespace}/{name} does not exist") from None
            raise _backend_error(e, f"patch virtualmachines/{name}") from None

    async def _get(self, plural: str, namespace: str, name: str, shared: bool = False) -> dict[str, Any] | None:
        cached = self.cache.lookup(plural, namespace, name, shared)
        if cached is not None:
            return None if cached is ABSENT else cached
        since = self.cache.reading(plural, namespace, name)
        try:
            found = await self.kube.get(plural, namespace, name, **KV)
        except ApiError as e:
            raise _backend_error(e, f"get {plural}/{name}") from None
        self.cache.read(plural, namespace, name, found, since)
        return found

    # --- VMBackend ---
    async def readiness(self, namespace: str, zone_name: str, zone_spec: Mapping[str, Any]) -> BackendReadiness:
        try:
            served = await self.kube.served_groups()
        except ApiError as e:
            return BackendReadiness(False, effective_template(zone_spec, None) is not None, "ApiUnavailable",
                                    f"API discovery failed: {e.status} {e.reason}")
        return readiness_from_discovery(served, zone_name, zone_spec)

    async def ensure(self, request: VMRequest) -> ObservedVM:
        try:
            vm = build_virtual_machine(request)
            secret = build_cloudinit_secret(request, self.agent)
        except ManifestError as e:
            raise BackendError(e.reason, str(e), retry_after=None) from None
        await self._ensure_secret(request.namespace, secret)
        try:
            created = await self.kube.create(m.VM_PLURAL, request.namespace, vm, **KV)
        except ApiError as e:
            raise _backend_error(e, f"create virtualmachines/{request.name}") from None
        if created is not None:
            self.cache.wrote(m.VM_PLURAL, created)
            log.info("created VirtualMachine %s/%s", request.namespace, request.name)
        else:
            await self._patch_vm(request.namespace, request.name, _vm_update_patch(vm))
        return await self.observe(request.namespace, request.name)

    async def _ensure_secret(self, namespace: str, secret: dict[str, Any]) -> None:
        """The Secret exists with this content when this returns: the VM is never created without it."""
        name = secret["metadata"]["name"]
        try:
            for _ in range(3):
                if await self.kube.create_secret(namespace, secret) is not None:
                    return
                current = await self.kube.read_secret(namespace, name)
                if current is None:
                    continue   # the create's 409 was a conflict, not an existing Secret: create again
                body = {**secret, "metadata": {**secret["metadata"], "resourceVersion": current["metadata"].get("resourceVersion")}}
                if await self.kube.replace_secret(namespace, body) is not None:   # stringData replaces the content whole
                    return
        except ApiError as e:
            raise _backend_error(e, f"write secrets/{name}") from None
        raise BackendError("Conflict", f"write secrets/{name}: another writer kept changing it", retry_after=1.0)

    async def start(self, namespace: str, name: str) -> None:
        await self._patch_vm(namespace, name, {"spec": {"runStrategy": "Always", "running": None}})

    async def stop(self, namespace: str, name: str) -> None:
        await self._patch_vm(namespace, name, {"spec": {"runStrategy": "Halted", "running": None}})

    async def reboot(self, namespace: str, name: str) -> None:
        """A new VMI (KubeVirt recreates it under runStrategy Always); a halted VM is started."""
        vm = await self._get(m.VM_PLURAL, namespace, name)
        if vm is None:
            raise BackendError("VMAbsent", f"VirtualMachine {namespace}/{name} does not exist")
        if (vm.get("spec") or {}).get("runStrategy") != "Always":
            await self.start(namespace, name)
            return
        self.cache.dropped(m.VMI_PLURAL, namespace, name)
        try:
            await self.kube.delete(m.VMI_PLURAL, namespace, name, propagation="Background", **KV)
        except ApiError as e:
            raise _backend_error(e, f"delete {m.VMI_PLURAL}/{name}") from None

    async def destroy(self, namespace: str, name: str) -> None:
        vm = await self._get(m.VM_PLURAL, namespace, name)
        # The Secret is owned by the SSVM (it outlives the VM otherwise): delete it with the VM.
        secret = _secret_of(vm) if vm else f"{name}-cloudinit"
        self.cache.dropped(m.VM_PLURAL, namespace, name)
        self.cache.dropped(m.VMI_PLURAL, namespace, name)
        self._observed.pop((namespace, name), None)
        try:
            await self.kube.delete(m.VM_PLURAL, namespace, name, propagation="Background", **KV)
            await self.kube.delete_secret(namespace, secret)
        except ApiError as e:
            raise _backend_error(e, f"delete {name}") from None

    async def observe(self, namespace: str, name: str) -> ObservedVM:
        vm = await self._get(m.VM_PLURAL, namespace, name, shared=True)
        vmi = await self._get(m.VMI_PLURAL, namespace, name, shared=True) if vm is not None else None
        versions = (_version(vm), _version(vmi))
        known = self._observed.get((namespace, name))
        if known is not None and known[0] == versions and None not in versions:
            return known[1]   # neither object changed: no second reading of the same two
        observed = observe_objects(vm, vmi)
        self._observed[(namespace, name)] = (versions, observed)
        return observed


def readiness_from_discovery(served: Mapping[str, list[str]], zone_name: str, zone_spec: Mapping[str, Any]) -> BackendReadiness:
    """Whether the cluster can run the zone's SSVMs, from the API groups it serves (group -> versions)."""
    template = effective_template(zone_spec, None)
    if m.KUBEVIRT_VERSION not in served.get(m.KUBEVIRT_GROUP, []):
        return BackendReadiness(False, template is not None, "KubeVirtNotInstalled",
                                f"the API does not serve {m.KUBEVIRT_API_VERSION}: install KubeVirt")
    if any((zone_spec.get("networks") or {}).get(t) for t in ("public", "guest", "management", "storage")) \
            and "v1" not in served.get(MULTUS_GROUP, []):
        return BackendReadiness(False, template is not None, "MultusNotInstalled",
                                f"the zone maps networks but {MULTUS_GROUP}/v1 is not served: install Multus")
    if template is None:
        return BackendReadiness(True, False, "TemplateMissing", f"zone {zone_name} sets no secondaryStorage.template.kubevirt image")
    offering = (zone_spec.get("secondaryStorage") or {}).get("offering") or {}
    if (template.url or offering.get("rootDisk") == "shared") and m.CDI_VERSION not in served.get(m.CDI_GROUP, []):
        return BackendReadiness(True, False, "CDINotInstalled",
                                f"the template needs a DataVolume import but {m.CDI_GROUP}/{m.CDI_VERSION} is not served")
    return BackendReadiness(True, True, "KubeVirtReady", "KubeVirt is served and the template is set.")


def _vm_update_patch(vm: dict[str, Any]) -> dict[str, Any]:
    """A merge patch bringing an existing VM to the built one: labels, owner, spec (lists replace)."""
    spec = dict(vm["spec"])
    spec.setdefault("dataVolumeTemplates", None)  # drop a DataVolume template the new spec has no more
    spec["running"] = None  # never both running and runStrategy
    meta = vm["metadata"]
    return {"metadata": {"labels": meta.get("labels"), "annotations": meta.get("annotations"),
                         "ownerReferences": meta.get("ownerReferences")}, "spec": spec}


def _version(body: Mapping[str, Any] | None) -> str | None:
    """Which version of an object was read ("absent" for none; None when it does not say)."""
    if body is None:
        return "absent"
    meta = body.get("metadata") or {}
    return f"{meta.get('uid')}/{meta['resourceVersion']}" if meta.get("resourceVersion") else None


def _secret_of(vm: Mapping[str, Any]) -> str:
    for volume in vm.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []):
        ref = (volume.get("cloudInitNoCloud") or {}).get("secretRef")
        if ref:
            return ref["name"]
    return f"{vm['metadata']['name']}-cloudinit"


def _backend_error(e: ApiError, what: str) -> BackendError:
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid", 429: "TooManyRequests", 504: "ApiTimeout"}
    reason = reasons.get(e.status or 0, "ApiError" if (e.status or 500) < 500 else "ApiServerError")
    return BackendError(reason, f"{what}: {e.status} {e.reason}", retry_after=None if reason == "Invalid" else 10.0)


__all__ = ["KubeVirtBackend", "readiness_from_discovery", "secret_name"]
