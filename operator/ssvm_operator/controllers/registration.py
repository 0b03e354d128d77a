"""Wiring: builds the kube layer, the backends and each controller with what it needs, and registers
their kopf handlers. The only module that imports the controllers' kopf modules."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from ssvm_operator import constants as c
from ssvm_operator.backends.base import BackendError, VMBackend
from ssvm_operator.backends.kubevirt.cache import VMCache
from ssvm_operator.backends.registry import BackendRegistry, backend_from_override
from ssvm_operator.controllers import kopf_settings, status_init
from ssvm_operator.controllers.guest.cluster import KubeCluster
from ssvm_operator.controllers.guest.controller import GuestController
from ssvm_operator.controllers.guest.mesh import Mesh
from ssvm_operator.controllers.guest.worker import GuestOps, GuestSettings
from ssvm_operator.controllers.keys.rotation import Logins
from ssvm_operator.controllers.keys.secrets import KeyMaterialError, KeyStore, SecretsApi
from ssvm_operator.controllers.ssvm.controller import SSVMController
from ssvm_operator.controllers.ssvm.start_gate import BackendReadinessGate, Reach, SSHStartGate, StartGate
from ssvm_operator.controllers.ssvm.vm_request import VMRequestBuilder
from ssvm_operator.controllers.template.controller import TemplateController
from ssvm_operator.controllers.template.worker import TemplateOps, TemplateSettings
from ssvm_operator.controllers.zone.controller import ZoneController
from ssvm_operator.kube.context import Kube
from ssvm_operator.settings import OperatorConfig
from ssvm_operator.ssh.channel import SSHGuestChannel, Timeouts

log = logging.getLogger(__name__)


@dataclass
class OperatorOptions:
    """What a process may choose beyond the command line: tests and the bench hand in their doubles here."""

    config: OperatorConfig = OperatorConfig()
    backend: VMBackend | None = None     # one backend for every zone; default: from config.backend_override
    guest_channel: Any = None            # a guest channel for every SSH login (a test's); default: real SSH
    guest_settings: GuestSettings | None = None
    template_settings: TemplateSettings | None = None
    secrets: SecretsApi | None = None    # default: the Kubernetes client
    secrets_ttl: float = 30.0            # key Secrets are re-read after this long
    mesh_quiet: float = 1.0
    mesh_max_delay: float = 10.0
    api_client: Any = None               # default: in-cluster service account, else the kubeconfig


def _login_factory(channel: Any) -> Any:
    if channel is None:
        return lambda key, timeouts: SSHGuestChannel(key.private, timeouts)
    if hasattr(channel, "for_key"):   # a channel that tells keys apart gets each key its own view
        return lambda key, timeouts: channel.for_key(key)
    return lambda key, timeouts: channel


def build_registry(options: OperatorOptions | None = None) -> kopf.OperatorRegistry:
    """A fresh registry holding every handler of the operator, wired to one kube layer."""
    options = options or OperatorOptions()
    # paramiko logs every connection and login at INFO: one line per SSH call would drown the operator's own
    if logging.getLogger("paramiko").level == logging.NOTSET:
        logging.getLogger("paramiko").setLevel(logging.WARNING)
    kube = Kube.connect(options.api_client)
    override = options.backend if options.backend is not None else backend_from_override(options.config.backend_override)
    vm_cache = VMCache() if override is None else None   # the KubeVirt backend observes VMs through the watch
    backends = BackendRegistry.default(kube.client, override, vm_cache)
    for source in (override, vm_cache):
        if source is not None and hasattr(source, "subscribe"):
            # the backend tells when a VM changes phase: the SSVM's loop wakes instead of polling
            source.subscribe(lambda namespace, name: kube.wakeups.wake((c.SSVM_KIND, namespace, name)))
    # guest operations are off for the in-memory backend (its VMs have no guests), unless a test hands a channel in
    guests = options.guest_channel is not None or getattr(override, "name", "") != "memory"

    registry = kopf.OperatorRegistry()
    kopf_settings.register(registry, options.config)
    status_init.register(registry, kube)
    gate: StartGate = BackendReadinessGate()
    requests = VMRequestBuilder()
    ssvm_controller: SSVMController
    if guests:
        keys = KeyStore(options.secrets or kube.client, ttl=options.secrets_ttl)
        logins = Logins(_login_factory(options.guest_channel))
        reach = Reach()
        gate, requests = SSHStartGate(keys, logins, reach), VMRequestBuilder(keys)

        async def host_channels(zone: Mapping[str, Any], timeouts: Timeouts) -> Any:
            try:
                return logins.keyring(await keys.operator_keys(zone), timeouts)
            except KeyMaterialError as e:
                raise BackendError(e.reason, e.message, retry_after=10.0) from None

        backends.attach_guest(host_channels)   # the external backend logs in to its hosts with the operator's keys
        ssvm_controller = SSVMController(kube, backends, options.config, gate, requests)
        cluster = KubeCluster(kube, ssvm_controller.reconciler.request_recreate)
        mesh = Mesh(cluster.addresses, quiet=options.mesh_quiet, max_delay=options.mesh_max_delay)
        ops = GuestOps(cluster, keys, logins, mesh, reach, options.guest_settings or GuestSettings())
        GuestController(ops, cluster).register(registry)
        indexes: dict[str, Any] = {}
        templates = TemplateOps(kube, indexes.get, keys, logins, reach, options.template_settings or TemplateSettings())
        TemplateController(templates, indexes).register(registry)
    else:
        ssvm_controller = SSVMController(kube, backends, options.config, gate, requests)
    ZoneController(kube, backends, options.config).register(registry)
    ssvm_controller.register(registry, vm_cache)
    log.info("guest operations %s", "on: SSH start gate on the guest port" if guests else "off (the backend's VMs have no guests)")
    return registry
