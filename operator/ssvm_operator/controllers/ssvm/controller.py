"""The SSVM controller (kopf): an index of SSVMs per zone, one lifecycle loop per SSVM, and the finalizer.

The loop polls quickly while the SSVM is in transition and every scan interval when steady; backend
errors back off exponentially and become conditions and (once per new reason) Warning Events.
"""
from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from typing import Any

import kopf

from ssvm_operator import constants as c
from ssvm_operator import metrics
from ssvm_operator.api.ssvm import GUEST_STATUS
from ssvm_operator.backends.base import BackendError
from ssvm_operator.backends.kubevirt.cache import VMCache
from ssvm_operator.backends.kubevirt.models import KUBEVIRT_GROUP, KUBEVIRT_VERSION, VM_PLURAL, VMI_PLURAL
from ssvm_operator.backends.registry import BackendRegistry
from ssvm_operator.controllers import ids
from ssvm_operator.controllers.ssvm.reconcile import PassResult, SSVMReconciler, bind
from ssvm_operator.controllers.ssvm.start_gate import StartGate
from ssvm_operator.controllers.ssvm.vm_request import VMRequestBuilder
from ssvm_operator.kube import events as ev
from ssvm_operator.kube.client import ApiError
from ssvm_operator.kube.context import Kube
from ssvm_operator.kube.wakeups import MAX_BACKOFF, backoff_delay
from ssvm_operator.kube.events import ref_of
from ssvm_operator.model.snapshot import json_copy
from ssvm_operator.model.views import POOL_RESTART_ANNOTATION, UPGRADING_ANNOTATION
from ssvm_operator.settings import OperatorConfig

KIND = c.SSVM_KIND
FAST_POLL = 0.5   # seconds between passes while an SSVM is in transition, growing to 5


async def _feed_cache(cache: VMCache, plural: str, type: str | None, body: kopf.Body, **_: Any) -> None:
    cache.seen(plural, type, body)


def zone_entry(namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """What the zone controller reads of one of its SSVMs (the `ssvms_by_zone` index entry)."""
    meta, spec, status = body.get("metadata", {}), body.get("spec") or {}, body.get("status") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k in (POOL_RESTART_ANNOTATION, UPGRADING_ANNOTATION)}
    conditions = [dict(x) for x in status.get("conditions") or [] if x.get("type") in ("Ready", "UpToDate")]
    return {
        "metadata": {"name": meta.get("name"), "namespace": namespace, "uid": meta.get("uid"), "labels": dict(meta.get("labels") or {}),
                     "annotations": annotations, "deletionTimestamp": meta.get("deletionTimestamp"),
                     "resourceVersion": meta.get("resourceVersion")},
        "spec": {"role": spec.get("role", "templateProcessor"), "desiredState": spec.get("desiredState", "Running"),
                 **{k: copy.deepcopy(spec[k]) for k in ("template", "offering") if spec.get(k)}},   # overrides: the rolling update's hash
        "status": {"state": status.get("state"), "health": {"activeSessions": (status.get("health") or {}).get("activeSessions", 0)},
                   "conditions": conditions, "observedRecreateRequest": status.get("observedRecreateRequest"),
                   "observedRebootRequest": status.get("observedRebootRequest")},
    }


def zone_inputs(namespace: str, body: Mapping[str, Any]) -> str:
    """The zone's entry without the version: when it is unchanged, the SSVM's event is no news to the zone."""
    entry = zone_entry(namespace, body)
    entry["metadata"].pop("resourceVersion")
    return json.dumps([(body.get("spec") or {}).get("zoneRef"), entry], sort_keys=True, default=str)


def lifecycle_inputs(body: Mapping[str, Any]) -> str:
    """All of an SSVM but what the guest controller writes besides its conditions (they make Ready) and the version."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")}
    status = {k: v for k, v in (body.get("status") or {}).items() if k not in GUEST_STATUS}
    return json.dumps([meta, body.get("spec"), status], sort_keys=True, default=str)


async def index_ssvm(namespace: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace, (body.get("spec") or {}).get("zoneRef", "")): zone_entry(namespace, body)}


class SSVMController:
    def __init__(self, kube: Kube, backends: BackendRegistry, config: OperatorConfig, gate: StartGate,
                 requests: VMRequestBuilder) -> None:
        self.kube, self.backends, self.config = kube, backends, config
        self.reconciler = SSVMReconciler(kube, backends, gate, requests)
        self._zone_inputs: dict[tuple[str, str], str] = {}        # zone_inputs of each SSVM's last event
        self._lifecycle_inputs: dict[tuple[str, str], str] = {}   # lifecycle_inputs of each SSVM's last event

    async def on_ssvm_event(self, type: str | None, namespace: str, name: str, body: kopf.Body, **_: Any) -> None:
        """Wakes the SSVM's lifecycle and its zone's loop, each only when something it reads changed: the guest
        controller's health heartbeat and action records wake neither."""
        if not namespace:
            return
        key, gone = (namespace, name), type == "DELETED"
        zone = (body.get("spec") or {}).get("zoneRef")
        seen_by_zone = None if gone else zone_inputs(namespace, body)
        if zone and (gone or self._zone_inputs.get(key) != seen_by_zone):
            self.kube.wakeups.wake((c.ZONE_KIND, namespace, zone))
        seen_by_lifecycle = None if gone else lifecycle_inputs(body)
        if gone or self._lifecycle_inputs.get(key) != seen_by_lifecycle:
            self.kube.wakeups.wake((KIND, namespace, name))
        if gone:
            self._zone_inputs.pop(key, None)
            self._lifecycle_inputs.pop(key, None)
        else:
            self._zone_inputs[key], self._lifecycle_inputs[key] = seen_by_zone, seen_by_lifecycle

    async def ssvm_daemon(self, namespace: str, name: str, body: kopf.Body, stopped: kopf.DaemonStopped, logger: Any,
                          zones_by_name: kopf.Index, **_: Any) -> None:
        key = (KIND, namespace, name)
        errors = transitions = 0
        while not stopped:
            self.kube.wakeups.clear(key)
            ssvm = self.kube.unseen.freshest(KIND, namespace, name, json_copy(dict(body)))
            zone_ref = (ssvm.get("spec") or {}).get("zoneRef", "")
            zone = next(iter(zones_by_name.get((namespace, zone_ref), [])), None)
            try:
                with metrics.observe_reconcile(KIND):
                    result = await self.reconciler.run(ssvm, json_copy(zone) if zone else None, logger)
            except ApiError as e:
                result = PassResult(False, 1.0, False)
                logger.warning("SSVM %s: API error %s %s", name, e.status, e.reason)
            if result.backoff_hint is not None:
                errors += 1
                delay = backoff_delay(errors, result.backoff_hint, MAX_BACKOFF)
            elif result.steady:
                errors = transitions = 0
                delay = self.config.scan_interval
            else:
                errors = 0
                transitions = 0 if result.acted else transitions + 1
                delay = min(5.0, FAST_POLL * (1.5 ** min(transitions, 10)))
            await self.kube.wakeups.sleep(key, delay, stopped)

    async def ssvm_deleted(self, namespace: str, name: str, body: kopf.Body, logger: Any, zones_by_name: kopf.Index,
                           **_: Any) -> None:
        """The finalizer: the SSVM's VM is destroyed before the object goes."""
        zone_name = (body.get("spec") or {}).get("zoneRef", "")
        zone = next(iter(zones_by_name.get((namespace, zone_name), [])), None)
        # the backend holding the VM: the one backendRef names (a zone that moved keeps it there until replaced)
        recorded = ((body.get("status") or {}).get("backendRef") or {}).get("backend")
        backend = self.backends.for_kind(recorded or self.backends.kind_of((zone or {}).get("spec")))
        ssvm_ref = ref_of(body, KIND)
        zone_ref = ref_of({**zone, "metadata": {**zone["metadata"], "namespace": namespace}}, c.ZONE_KIND) if zone else None
        bind(backend, body, zone)
        try:
            await backend.destroy(namespace, name)
        except BackendError as e:
            if self.reconciler.error_changed(namespace, name, e.reason):
                self.kube.events.post([ev.EventSpec(ev.BACKEND_ERROR, f"Destroying the VM of {name} failed: {e.reason}: {e.message}",
                                                    "Warning")], ssvm_ref, zone_ref)
            raise kopf.TemporaryError(f"destroying the VM failed: {e.reason}", delay=e.retry_after or 10.0) from None
        self.kube.events.post([ev.EventSpec(ev.SSVM_DESTROYED, f"SSVM {name} and its VM destroyed.")], ssvm_ref, zone_ref)
        self.reconciler.forget(namespace, name)
        metrics.forget_ssvm(namespace, zone_name, name)
        self.kube.unseen.forget(KIND, namespace, name)
        self.kube.wakeups.forget((KIND, namespace, name))
        self.kube.wakeups.wake((c.ZONE_KIND, namespace, zone_name))
        logger.info("SSVM %s: VM destroyed", name)

    def register(self, registry: kopf.OperatorRegistry, vm_cache: VMCache | None = None) -> None:
        """`vm_cache`: fed here from the watch of KubeVirt VMs and instances (none with a backend override)."""
        if vm_cache is not None:
            for plural, handler_id in ((VM_PLURAL, ids.VM_EVENT), (VMI_PLURAL, ids.VMI_EVENT)):
                # only the SSVMs' VMs (their instances carry the template's labels): a shared namespace's other VMs are not kept
                kopf.on.event(KUBEVIRT_GROUP, KUBEVIRT_VERSION, plural, id=handler_id, registry=registry,
                              labels={c.LABEL_SSVM: kopf.PRESENT})(functools.partial(_feed_cache, vm_cache, plural))
        g, v, p = c.GROUP, c.VERSION, c.SSVM_PLURAL
        kopf.index(g, v, p, id=ids.SSVMS_INDEX, registry=registry)(index_ssvm)
        kopf.on.event(g, v, p, id=ids.SSVM_EVENT, registry=registry)(self.on_ssvm_event)
        kopf.daemon(g, v, p, id=ids.SSVM_LIFECYCLE, registry=registry, cancellation_backoff=ids.DAEMON_EXIT_GRACE,
                    cancellation_timeout=ids.DAEMON_CANCEL_TIMEOUT)(self.ssvm_daemon)
        kopf.on.delete(g, v, p, id=ids.SSVM_FINALIZER, registry=registry)(self.ssvm_deleted)
