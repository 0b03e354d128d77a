"""The libvirt backend: SSVMs as libvirt domains (KVM, or QEMU's software emulation), as CloudStack runs
its system VMs on KVM hosts.

ensure defines the domain (a copy-on-write root disk over the image, a config disk with the pinned host
key, the boot arguments on the kernel command line with addresses from each network's range) and starts
it; start/stop/reboot/destroy map to create, shutdown (bounded, then destroy), reboot, and destroy plus
undefine plus the volumes' deletion. The domain's metadata element is the record of whose it is and which
addresses it holds, so nothing is lost when the operator restarts.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ssvm_operator.backends.base import BackendError
from ssvm_operator.backends.libvirt import domain as d
from ssvm_operator.backends.libvirt.connection import Connections, CredentialFiles, first_line, libvirt_module, redact_uri, uri_with_credentials
from ssvm_operator.model.niclayout import nics_by_traffic
from ssvm_operator.model.vm import BackendReadiness, NicInfo, ObservedVM, VMPhase, VMRequest

log = logging.getLogger(__name__)
KIND = "LibvirtDomain"
CALL_TIMEOUT = 60.0
SECRET_TTL = 30.0   # seconds a host's SSH key read from its Secret is reused: every pass needs the URI, not a GET
STREAM_CHUNK = 64 * 1024

# virDomainState -> phase (libvirt's enum values, so the mapping does not need the binding)
_PHASES = {0: VMPhase.PROVISIONING, 1: VMPhase.RUNNING, 2: VMPhase.RUNNING, 3: VMPhase.STARTING, 4: VMPhase.STOPPING,
           5: VMPhase.STOPPED, 6: VMPhase.FAILED, 7: VMPhase.STOPPED}
_SHUTOFF_CRASHED, _SHUTOFF_FAILED = 3, 6


@dataclass
class _Binding:
    template: d.LibvirtTemplate | None
    error: d.TemplateError | None = None


class LibvirtBackend:
    name = "libvirt"

    def __init__(self, secrets: Any = None, connections: Connections | None = None) -> None:
        """`secrets`: reads a Secret (`await secrets.read_secret(namespace, name)`) for a remote host's SSH key."""
        self.secrets = secrets
        self.connections = connections or Connections()
        self.credentials = CredentialFiles()
        self._bound: dict[tuple[str, str], _Binding] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._keys: dict[tuple[str, str, str], tuple[float, str]] = {}   # (namespace, Secret, key) -> (read at, SSH key)
        self._lv: Any = None

    @property
    def lv(self) -> Any:
        if self._lv is None:
            self._lv = libvirt_module()
        return self._lv

    # --- which host and template an SSVM is on ---
    def bind(self, ssvm: Mapping[str, Any], zone: Mapping[str, Any] | None) -> None:
        """Told the SSVM and its zone before each pass: observe, start, stop and destroy need the host."""
        if zone is None:
            return
        meta = ssvm["metadata"]
        try:
            template, error = d.effective_template(zone.get("spec") or {}, ssvm.get("spec") or {}), None
        except d.TemplateError as e:
            template, error = None, e
        self._bound[(meta["namespace"], meta["name"])] = _Binding(template, error)

    def _template(self, namespace: str, name: str) -> d.LibvirtTemplate:
        b = self._bound.get((namespace, name))
        if b is None:
            raise BackendError("NotBound", f"the libvirt host of {namespace}/{name} is not known yet", 5.0)
        if b.error is not None:
            raise BackendError(b.error.reason, str(b.error), None)
        if b.template is None:
            raise BackendError("TemplateMissing", "the zone sets no secondaryStorage.template.libvirt", None)
        return b.template

    async def _uri(self, namespace: str, template: d.LibvirtTemplate) -> str:
        """The template's URI with the key file and known_hosts it needs (the Secret read at most every SECRET_TTL)."""
        key = await self._ssh_key(namespace, template.ssh_key_secret_ref) if template.ssh_key_secret_ref else None
        keyfile, known = self.credentials.write(f"{namespace}/{template.uri}", key, template.known_hosts)
        return uri_with_credentials(template.uri, keyfile, known)

    async def _ssh_key(self, namespace: str, ref: Any) -> str:
        cached = self._keys.get((namespace, ref.name, ref.key))
        if cached is not None and time.monotonic() - cached[0] < SECRET_TTL:
            return cached[1]
        if self.secrets is None:
            raise BackendError("SecretUnavailable", "the libvirt backend cannot read Secrets in this run", 60.0)
        secret = await self.secrets.read_secret(namespace, ref.name)
        value = ((secret or {}).get("data") or {}).get(ref.key)
        if not value:
            raise BackendError("SecretNotFound", f"Secret {namespace}/{ref.name} has no key {ref.key!r} (the libvirt host's SSH key)", 30.0)
        key = base64.b64decode(value).decode()
        self._keys[(namespace, ref.name, ref.key)] = (time.monotonic(), key)
        return key

    async def _call(self, uri: str, fn: Any, timeout: float = CALL_TIMEOUT) -> Any:
        try:
            return await self.connections.call(uri, fn, timeout)
        except self.lv.libvirtError as e:
            if _transport_error(self.lv, e):
                self.connections.drop(uri)
            raise _backend_error(self.lv, e, uri) from None

    async def _on_host(self, namespace: str, name: str, fn: Any, timeout: float = CALL_TIMEOUT) -> Any:
        template = self._template(namespace, name)
        return await self._call(await self._uri(namespace, template), lambda conn: fn(conn, template), timeout)

    def _lock(self, uri: str) -> asyncio.Lock:
        return self._locks.setdefault(uri, asyncio.Lock())

    # --- the interface ---
    async def readiness(self, namespace: str, zone_name: str, zone_spec: Mapping[str, Any]) -> BackendReadiness:
        try:
            template = d.effective_template(zone_spec, None)
        except d.TemplateError as e:
            return BackendReadiness(False, False, e.reason, str(e))
        if template is None:
            return BackendReadiness(False, False, "TemplateMissing", f"zone {zone_name} sets no secondaryStorage.template.libvirt")
        try:
            for net in d.network_by_nic(template).values():
                d.address_range(net)
            uri = await self._uri(namespace, template)
            await self._call(uri, lambda conn: self._check_host(conn, template), 30.0)
        except d.TemplateError as e:
            return BackendReadiness(False, False, e.reason, str(e))
        except BackendError as e:
            return BackendReadiness(False, True, e.reason, e.message)
        return BackendReadiness(True, True, "LibvirtReady",
                                f"libvirt at {redact_uri(template.uri)} answers; storage pool {template.storage_pool} is active.")

    def _check_host(self, conn: Any, template: d.LibvirtTemplate) -> None:
        pool = conn.storagePoolLookupByName(template.storage_pool)
        if not pool.isActive():
            raise BackendError("StoragePoolInactive", f"storage pool {template.storage_pool} is not active", 30.0)
        for net in d.network_by_nic(template).values():
            if net.network:
                conn.networkLookupByName(net.network)

    async def ensure(self, request: VMRequest) -> ObservedVM:
        try:
            template = d.effective_template(request.zone_spec, request.ssvm_spec)
        except d.TemplateError as e:
            raise BackendError(e.reason, str(e), None) from None
        if template is None:
            raise BackendError("TemplateMissing", "the zone sets no secondaryStorage.template.libvirt", None)
        self._bound[(request.namespace, request.name)] = _Binding(template)
        uri = await self._uri(request.namespace, template)
        async with self._lock(uri):   # addresses and volumes are handed out one SSVM at a time per host
            return await self._call(uri, lambda conn: self._ensure(conn, request, template),
                                    CALL_TIMEOUT + template.shutdown_timeout_seconds)

    def _ensure(self, conn: Any, request: VMRequest, template: d.LibvirtTemplate) -> ObservedVM:
        dom = self._lookup(conn, request.namespace, request.name)
        if dom is None:
            dom = self._define(conn, request, template)
            log.info("defined libvirt domain %s", dom.name())
        if request.running and not dom.isActive():
            self._start(dom)
        elif not request.running and dom.isActive():
            self._shutdown(dom, template.shutdown_timeout_seconds)
        return self._observed(dom)

    def _define(self, conn: Any, request: VMRequest, template: d.LibvirtTemplate) -> Any:
        try:
            record = self._record_for(conn, request, template)
            xml = d.build_domain_xml(request, template, record, template.storage_pool)
            archive = d.config_archive(request.host_private_key, request.operator_public_key)
        except d.TemplateError as e:
            raise BackendError(e.reason, str(e), None if e.reason != "NoFreeAddress" else 60.0) from None
        pool = conn.storagePoolLookupByName(template.storage_pool)
        pool.refresh(0)
        self._delete_volumes(pool, request.namespace, request.name)   # leftovers of an earlier, undefined domain
        pool.createXML(d.root_volume_xml(request.namespace, request.name, template.image.root_disk), 0)
        config = pool.createXML(d.config_volume_xml(request.namespace, request.name), 0)
        stream = conn.newStream(0)
        config.upload(stream, 0, len(archive), 0)
        for at in range(0, len(archive), STREAM_CHUNK):
            stream.send(archive[at:at + STREAM_CHUNK])
        stream.finish()
        return conn.defineXML(xml)

    def _record_for(self, conn: Any, request: VMRequest, template: d.LibvirtTemplate) -> d.DomainRecord:
        nics = d.planned_nics(request.zone_spec, template)
        networks = d.network_by_nic(template)
        taken: dict[str, set[str]] = {}
        own = d.domain_name(request.namespace, request.name)
        for other in conn.listAllDomains(0):
            record = self._record(other)
            if record is None or other.name() == own:
                continue
            for nic, address in record.addresses.items():
                taken.setdefault(record.links.get(nic, ""), set()).add(address)
        addresses = d.assign_addresses(nics, networks, taken)
        return d.DomainRecord(request.namespace, request.name, request.zone_name, request.uid, request.spec_hash, 0,
                              addresses, {nic.name: nic.network_name or "" for nic in nics})

    def _record(self, dom: Any) -> d.DomainRecord | None:
        try:
            return d.parse_metadata(dom.metadata(self.lv.VIR_DOMAIN_METADATA_ELEMENT, d.METADATA_NS, 0))
        except self.lv.libvirtError:
            return None   # not one of ours

    def _lookup(self, conn: Any, namespace: str, name: str) -> Any | None:
        try:
            return conn.lookupByName(d.domain_name(namespace, name))
        except self.lv.libvirtError as e:
            if e.get_error_code() == self.lv.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _start(self, dom: Any) -> None:
        try:
            dom.create()
        except self.lv.libvirtError as e:
            raise BackendError("DomainStartFailed", f"domain {dom.name()} failed to start: {first_line(e)}", 30.0) from None

    def _shutdown(self, dom: Any, timeout: float) -> None:
        """A clean shutdown (ACPI power button), then power off when the guest has not stopped in time."""
        try:
            dom.shutdown()
        except self.lv.libvirtError:
            pass   # a guest that cannot be asked is powered off below
        deadline = time.monotonic() + timeout
        while dom.isActive() and time.monotonic() < deadline:
            time.sleep(0.5)
        if dom.isActive():
            dom.destroy()

    def _delete_volumes(self, pool: Any, namespace: str, name: str) -> None:
        for vol_name in (d.root_volume(namespace, name), d.config_volume(namespace, name)):
            try:
                pool.storageVolLookupByName(vol_name).delete(0)
            except self.lv.libvirtError as e:
                if e.get_error_code() != self.lv.VIR_ERR_NO_STORAGE_VOL:
                    raise

    def _observed(self, dom: Any) -> ObservedVM:
        state, reason = dom.state(0)
        record = self._record(dom)
        phase = _PHASES.get(state, VMPhase.FAILED)
        why, message = "", ""
        if state == 5 and reason in (_SHUTOFF_CRASHED, _SHUTOFF_FAILED):
            phase, why, message = VMPhase.FAILED, "DomainCrashed", f"domain {dom.name()} stopped: the guest crashed or failed to start"
        elif phase == VMPhase.FAILED:
            why, message = "DomainCrashed", f"domain {dom.name()} crashed"
        running = phase == VMPhase.RUNNING
        nics: dict[str, NicInfo] = {}
        if running and record is not None:
            nics = nics_by_traffic({nic: NicInfo(ip=address, mac=d.mac_of(record.namespace, record.name, nic),
                                                 network=record.links.get(nic) or None)
                                    for nic, address in record.addresses.items()})
        return ObservedVM(phase, why, message, nics=nics,
                          instance_id=f"{dom.UUIDString()}/{dom.ID()}/{record.boots if record else 0}" if running else None,
                          backend_name=dom.name(), kind=KIND, spec_hash=(record.spec_hash or None) if record else None)

    async def start(self, namespace: str, name: str) -> None:
        def run(conn: Any, template: d.LibvirtTemplate) -> None:
            dom = self._must(conn, namespace, name)
            if not dom.isActive():
                self._start(dom)
        await self._on_host(namespace, name, run)

    async def stop(self, namespace: str, name: str) -> None:
        def run(conn: Any, template: d.LibvirtTemplate) -> None:
            dom = self._must(conn, namespace, name)
            if dom.isActive():
                self._shutdown(dom, template.shutdown_timeout_seconds)
        template = self._template(namespace, name)
        await self._on_host(namespace, name, run, CALL_TIMEOUT + template.shutdown_timeout_seconds)

    async def reboot(self, namespace: str, name: str) -> None:
        """A new instance: the boot count in the record goes up, then the guest is reset; a stopped domain is started."""
        def run(conn: Any, template: d.LibvirtTemplate) -> None:
            dom = self._must(conn, namespace, name)
            if not dom.isActive():
                self._start(dom)
                return
            record = self._record(dom)
            if record is not None:
                flags = self.lv.VIR_DOMAIN_AFFECT_LIVE | self.lv.VIR_DOMAIN_AFFECT_CONFIG
                dom.setMetadata(self.lv.VIR_DOMAIN_METADATA_ELEMENT, d.metadata_xml(replace(record, boots=record.boots + 1)),
                                d.METADATA_PREFIX, d.METADATA_NS, flags)
            dom.reset(0)
        await self._on_host(namespace, name, run)

    async def destroy(self, namespace: str, name: str) -> None:
        try:
            template = self._template(namespace, name)
        except BackendError as e:
            if e.reason == "NotBound":   # the zone is gone and nothing says which host the domain was on
                log.warning("SSVM %s/%s: no zone, so no libvirt host known: its domain (if any) is left", namespace, name)
                return
            raise

        def run(conn: Any, template: d.LibvirtTemplate) -> None:
            dom = self._lookup(conn, namespace, name)
            if dom is not None:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            pool = conn.storagePoolLookupByName(template.storage_pool)
            pool.refresh(0)
            self._delete_volumes(pool, namespace, name)
        uri = await self._uri(namespace, template)
        async with self._lock(uri):
            await self._call(uri, lambda conn: run(conn, template))
        self._bound.pop((namespace, name), None)

    async def observe(self, namespace: str, name: str) -> ObservedVM:
        def run(conn: Any, template: d.LibvirtTemplate) -> ObservedVM:
            dom = self._lookup(conn, namespace, name)
            if dom is None:
                return ObservedVM(VMPhase.ABSENT, "DomainAbsent", f"no libvirt domain {d.domain_name(namespace, name)}")
            return self._observed(dom)
        if (namespace, name) not in self._bound:   # destroyed, or never bound: nothing of it is known here
            return ObservedVM(VMPhase.ABSENT, "DomainAbsent", f"no libvirt domain {d.domain_name(namespace, name)} is known")
        return await self._on_host(namespace, name, run, 30.0)

    def _must(self, conn: Any, namespace: str, name: str) -> Any:
        dom = self._lookup(conn, namespace, name)
        if dom is None:
            raise BackendError("VMAbsent", f"no libvirt domain {d.domain_name(namespace, name)}", 5.0)
        return dom


def _transport_error(lv: Any, e: Any) -> bool:
    return e.get_error_code() in (lv.VIR_ERR_SYSTEM_ERROR, lv.VIR_ERR_RPC, lv.VIR_ERR_NO_CONNECT, lv.VIR_ERR_INTERNAL_ERROR,
                                  lv.VIR_ERR_AUTH_FAILED)


def _backend_error(lv: Any, e: Any, uri: str) -> BackendError:
    """A libvirt error as the SSVM's reason: no such pool or network, the host unreachable, libvirt refusing."""
    code, text = e.get_error_code(), first_line(e)
    reasons = {lv.VIR_ERR_NO_STORAGE_POOL: "StoragePoolNotFound", lv.VIR_ERR_NO_NETWORK: "NetworkNotFound",
               lv.VIR_ERR_NO_STORAGE_VOL: "VolumeNotFound", lv.VIR_ERR_XML_ERROR: "InvalidDomain",
               lv.VIR_ERR_CONFIG_UNSUPPORTED: "InvalidDomain", lv.VIR_ERR_OPERATION_INVALID: "LibvirtRefused",
               lv.VIR_ERR_OPERATION_FAILED: "LibvirtOperationFailed", lv.VIR_ERR_AUTH_FAILED: "HostUnreachable",
               lv.VIR_ERR_NO_CONNECT: "HostUnreachable", lv.VIR_ERR_RPC: "HostUnreachable", lv.VIR_ERR_SYSTEM_ERROR: "HostUnreachable"}
    reason = reasons.get(code, "LibvirtError")
    return BackendError(reason, f"libvirt at {redact_uri(uri)}: {text}", None if reason == "InvalidDomain" else 15.0)
