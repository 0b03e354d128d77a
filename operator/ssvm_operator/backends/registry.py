"""Which backend runs a zone's SSVMs: chosen by `spec.secondaryStorage.backend`, or one override for all.

`kubevirt` is the KubeVirt backend when its package is importable; `libvirt` runs domains on a libvirt
host when libvirt-python is installed; `external` drives hosts the operator does not create
(backends/external.py), over SSH with the keys guest operations attach.
A kind this build cannot run says so through readiness (`BackendReady=False`, `BackendNotImplemented`).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from ssvm_operator.backends.base import BackendError, VMBackend

from ssvm_operator.model.vm import BackendReadiness, ObservedVM, VMRequest

log = logging.getLogger(__name__)


class UnimplementedBackend:
    """A backend kind this build cannot run: readiness says why, every action refuses."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message

    async def readiness(self, namespace: str, zone_name: str, zone_spec: Mapping[str, Any]) -> BackendReadiness:
        return BackendReadiness(False, False, "BackendNotImplemented", self.message)

    def _refuse(self) -> BackendError:
        return BackendError("BackendNotImplemented", self.message, retry_after=60.0)

    async def ensure(self, request: VMRequest) -> ObservedVM:
        raise self._refuse()

    async def start(self, namespace: str, name: str) -> None:
        raise self._refuse()

    async def stop(self, namespace: str, name: str) -> None:
        raise self._refuse()

    async def reboot(self, namespace: str, name: str) -> None:
        raise self._refuse()

    async def destroy(self, namespace: str, name: str) -> None:
        return None   # nothing was ever created by a backend that cannot create

    async def observe(self, namespace: str, name: str) -> ObservedVM:
        raise self._refuse()


def _kubevirt_factory(api_client: Any, vm_cache: Any = None) -> Callable[[], VMBackend]:
    def make() -> VMBackend:
        try:
            from ssvm_operator.backends.kubevirt.backend import KubeVirtBackend
        except ImportError as e:  # a build without the kubevirt backend still runs the rest
            return UnimplementedBackend("kubevirt", f"the kubevirt backend is not available in this build: {e}")
        return KubeVirtBackend(api_client, cache=vm_cache)
    return make


def _libvirt_factory(api_client: Any) -> Callable[[], VMBackend]:
    def make() -> VMBackend:
        try:
            import libvirt  # noqa: F401 - the binding is an optional extra
        except ImportError as e:
            return UnimplementedBackend("libvirt", f"the libvirt backend needs libvirt-python (pip install 'ssvm-operator[libvirt]'): {e}")
        from ssvm_operator.backends.libvirt.backend import LibvirtBackend
        from ssvm_operator.kube.client import KubeClient
        secrets = api_client if isinstance(api_client, KubeClient) else (KubeClient(api_client) if api_client is not None else None)
        return LibvirtBackend(secrets)
    return make


def _external() -> VMBackend:
    from ssvm_operator.backends.external import ExternalBackend
    return ExternalBackend()


class BackendRegistry:
    """Backends by kind, made on first use; `override` (e.g. the in-memory backend) serves every zone."""

    def __init__(self, factories: Mapping[str, Callable[[], VMBackend]], override: VMBackend | None = None) -> None:
        self._factories = dict(factories)
        self._made: dict[str, VMBackend] = {}
        self.override = override
        self.guest_channels: Any = None

    @classmethod
    def default(cls, api_client: Any = None, override: VMBackend | None = None, vm_cache: Any = None) -> "BackendRegistry":
        """`vm_cache`: the KubeVirt backend's view of VMs and instances, fed by the operator's watch."""
        return cls({
            "kubevirt": _kubevirt_factory(api_client, vm_cache),
            "external": _external,
            "libvirt": _libvirt_factory(api_client),
        }, override)

    def attach_guest(self, channels: Any) -> None:
        """Guest operations' SSH channels (per zone, with the operator's keys) for backends that talk to hosts."""
        self.guest_channels = channels
        for backend in self._made.values():
            if hasattr(backend, "attach"):
                backend.attach(channels)

    def kind_of(self, zone_spec: Mapping[str, Any] | None) -> str:
        return ((zone_spec or {}).get("secondaryStorage") or {}).get("backend", "kubevirt")

    def for_zone(self, zone_spec: Mapping[str, Any] | None) -> VMBackend:
        return self.for_kind(self.kind_of(zone_spec))

    def for_kind(self, kind: str) -> VMBackend:
        if self.override is not None:
            return self.override
        if kind not in self._made:
            factory = self._factories.get(kind)
            self._made[kind] = factory() if factory else UnimplementedBackend(kind, f"no backend named {kind!r}")
            if self.guest_channels is not None and hasattr(self._made[kind], "attach"):
                self._made[kind].attach(self.guest_channels)
        return self._made[kind]


def backend_from_override(spec: str | None) -> VMBackend | None:
    """`memory` or `memory:/path/state.json` (VMs kept across restarts); None for no override."""
    if not spec:
        return None
    kind, _, arg = spec.partition(":")
    if kind == "memory":
        from ssvm_operator.backends.memory import MemoryBackend
        return MemoryBackend(state_path=arg or None)
    raise ValueError(f"unknown backend override {spec!r}: use memory[:STATE_FILE]")
