"""What every handler shares, kept in kopf's memo as `memo.runtime`: the API client, the backends,
the start gate, the VM request builder, per-object wake-up events and small caches.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import kopf

from .. import constants as c
from .. import metrics
from ..backends.base import VMRequest
from ..backends.registry import BackendRegistry
from ..core.events import EventSpec
from ..core.rollout import material_hash
from ..settings import OperatorConfig
from .kubeapi import KubeApi
from .start_gate import BackendReadinessGate, StartGate

log = logging.getLogger(__name__)
Key = tuple[str, str, str]   # (kind, namespace, name)
RequestBuilder = Callable[[Mapping[str, Any], Mapping[str, Any], bool], VMRequest]


def default_vm_request(ssvm: Mapping[str, Any], zone: Mapping[str, Any], running: bool) -> VMRequest:
    """The VM request from the SSVM and its zone; the guest issue adds keys (replace `Runtime.vm_request`)."""
    meta, spec = ssvm["metadata"], ssvm.get("spec") or {}
    zone_spec = zone.get("spec") or {}
    role = spec.get("role", "templateProcessor")
    try:
        from ..core.bootargs import build_boot_args
        boot_args = build_boot_args(name=meta["name"], zone_name=zone["metadata"]["name"], role=role, zone_spec=zone_spec)
    except Exception as e:  # noqa: BLE001 - boot args are the boot issue's; a failure here must not stop the lifecycle
        log.debug("no boot args for %s: %s", meta["name"], e)
        boot_args = ""
    return VMRequest(namespace=meta["namespace"], name=meta["name"], uid=meta.get("uid", ""), zone_name=zone["metadata"]["name"],
                     role=role, running=running, zone_spec=zone_spec, ssvm_spec=spec, boot_args=boot_args,
                     spec_hash=material_hash(zone_spec, spec),
                     labels={c.LABEL_ZONE: zone["metadata"]["name"], c.LABEL_ROLE: role, c.LABEL_SSVM: meta["name"]})


@dataclass
class Runtime:
    config: OperatorConfig
    api: KubeApi
    backends: BackendRegistry
    start_gate: StartGate = field(default_factory=BackendReadinessGate)
    vm_request: RequestBuilder = default_vm_request
    fast_poll: float = 0.5                 # while an SSVM is in transition
    max_backoff: float = 60.0
    readiness_ttl: float = 10.0            # backend readiness answers are reused this long
    _wakers: dict[Key, asyncio.Event] = field(default_factory=dict)
    readiness_cache: dict[tuple[str, str], tuple[float, str, Any]] = field(default_factory=dict)
    pending_creates: dict[tuple[str, str], dict[str, tuple[float, dict[str, Any]]]] = field(default_factory=dict)
    zone_generations: dict[tuple[str, str], int | None] = field(default_factory=dict)
    last_errors: dict[Key, str] = field(default_factory=dict)
    # reboot/recreate tokens carried out whose acknowledgement may not be stored yet (a conflict, a lagging watch)
    acted_requests: dict[Key, dict[str, str]] = field(default_factory=dict)
    # (VM instance, monotonic time) since which the start gate has failed, for the start timeout
    gate_failing_since: dict[Key, tuple[str | None, float]] = field(default_factory=dict)
    _written: dict[Key, tuple[set[str], dict[str, Any]]] = field(default_factory=dict)
    # rolling update per zone: the replacement issued (time, SSVM, token), and the SSVMs whose SSVMUpgraded was posted
    rollout_issued: dict[tuple[str, str], tuple[float, str, str]] = field(default_factory=dict)
    rollout_done: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def remember_write(self, kind: str, namespace: str, name: str, written_over: tuple[str | None, ...], response: dict[str, Any]) -> None:
        """Our own write's result, used until the watch stream delivers it (so a request is never acted on twice)."""
        key = (kind, namespace, name)
        stale = self._written[key][0] if key in self._written else set()
        stale.update(rv for rv in written_over if rv)
        self._written[key] = (stale, response)

    def freshest(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """`body` from kopf's live view, or our last write's result while the view still shows an older version."""
        key = (kind, namespace, name)
        written = self._written.get(key)
        if written is None:
            return body
        stale, response = written
        if body.get("metadata", {}).get("resourceVersion") in stale:
            return copy.deepcopy(response)
        del self._written[key]
        return body
        before_rv, response = written
        if body.get("metadata", {}).get("resourceVersion") == before_rv:
            return copy.deepcopy(response)
        del self._written[(kind, namespace, name)]
        return body

    def waker(self, kind: str, namespace: str, name: str) -> asyncio.Event:
        return self._wakers.setdefault((kind, namespace, name), asyncio.Event())

    def wake(self, kind: str, namespace: str, name: str) -> None:
        self.waker(kind, namespace, name).set()

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._wakers.pop((kind, namespace, name), None)
        self._written.pop((kind, namespace, name), None)
        self.last_errors.pop((kind, namespace, name), None)
        self.acted_requests.pop((kind, namespace, name), None)
        self.gate_failing_since.pop((kind, namespace, name), None)

    async def sleep(self, kind: str, namespace: str, name: str, seconds: float, stopped: Any) -> None:
        """Wait until woken, stopped, or `seconds` passed; stop is checked at least every second."""
        event = self.waker(kind, namespace, name)
        deadline = time.monotonic() + seconds
        while not stopped and not event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(event.wait(), timeout=min(left, 1.0))
            except asyncio.TimeoutError:
                pass

    def error_changed(self, key: Key, reason: str | None) -> bool:
        """True when an error reason differs from the last one seen: Events only on change, never a flood."""
        before = self.last_errors.get(key)
        if reason is None:
            self.last_errors.pop(key, None)
        else:
            self.last_errors[key] = reason
        return reason is not None and reason != before


def object_ref(kind: str, namespace: str, name: str, uid: str | None) -> dict[str, Any]:
    return {"apiVersion": c.API_VERSION, "kind": kind, "metadata": {"namespace": namespace, "name": name, "uid": uid}}


def post_events(events: tuple[EventSpec, ...] | list[EventSpec], ssvm_ref: Mapping[str, Any] | None,
                zone_ref: Mapping[str, Any] | None) -> None:
    """Each event on the SSVM, and on its zone too when it says so. No secret is ever in a message."""
    for e in events:
        metrics.record_event(e.reason, e.type)  # once per event, not per object it is posted on
        targets = [r for r in (ssvm_ref, zone_ref if e.on_zone else None) if r is not None]
        for target in targets:
            try:
                kopf.event(target, type=e.type, reason=e.reason, message=e.message[:1024])
            except Exception as err:  # noqa: BLE001 - an Event that cannot be posted never fails reconciliation
                log.debug("event %s not posted: %s", e.reason, err)


def backoff_delay(attempt: int, hint: float | None, ceiling: float) -> float:
    base = hint if hint is not None else 1.0
    return min(ceiling, base * (2 ** min(attempt, 8)))
