"""Kubernetes Events: every reason the operator posts, and the poster.

Events are posted as core/v1 Events by the reporting controller `ssvm-operator`, in the background
(an Event that cannot be posted never holds or fails reconciliation). No secret is ever in a message.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator import metrics

log = logging.getLogger(__name__)

# SSVM lifecycle (CloudStack's SSVM_CREATED, SSVM_CREATE_FAILURE, SSVM_REBOOTED alerts and more).
SSVM_CREATED = "SSVMCreated"
SSVM_CREATE_FAILED = "SSVMCreateFailed"
SSVM_NAME_TAKEN = "SSVMNameTaken"   # a slot name held by another zone's SSVM: the zone takes the next slot
SSVM_STARTED = "SSVMStarted"
SSVM_STOPPED = "SSVMStopped"
SSVM_REBOOTED = "SSVMRebooted"
SSVM_DESTROYED = "SSVMDestroyed"
SSVM_START_FAILED = "SSVMStartFailed"
SSVM_REQUEST_IGNORED = "SSVMRequestIgnored"
SSVM_UPGRADING = "SSVMUpgrading"   # the zone's rolling update replaces it (cloudstack-sysvmadm)
SSVM_UPGRADED = "SSVMUpgraded"
BACKEND_ERROR = "BackendError"
IMAGESTORE_REMOVED = "ImageStoreRemoved"   # on the Zone: its SSVMs unmount the store, the desired count follows
DIAGNOSTICS_COLLECTED = "DiagnosticsCollected"   # on the SSVM: the bundle is in its diagnostics ConfigMap
RECOVERED = "Recovered"   # Normal: an object whose Ready named a failure is Ready again (the failure's own reason is the Warning's)
# Guest health.
SSVM_UNHEALTHY = "SSVMUnhealthy"
SSVM_RECREATED = "SSVMRecreated"
# Operator SSH key rotation.
SSH_KEY_ROTATION_STARTED = "SSHKeyRotationStarted"
SSH_KEY_PROMOTED = "SSHKeyPromoted"
SSH_KEY_ROTATED = "SSHKeyRotated"

# Templates (on the Template).
TEMPLATE_DOWNLOAD_STARTED = "TemplateDownloadStarted"
TEMPLATE_DOWNLOADED = "TemplateDownloaded"
TEMPLATE_DOWNLOAD_FAILED = "TemplateDownloadFailed"
TEMPLATE_MISSING = "TemplateMissing"   # the periodic look found the image gone or damaged: it is downloaded again
TEMPLATE_REMOVED = "TemplateRemoved"

REASONS = (SSVM_CREATED, SSVM_CREATE_FAILED, SSVM_NAME_TAKEN, SSVM_STARTED, SSVM_STOPPED, SSVM_REBOOTED, SSVM_DESTROYED, SSVM_START_FAILED,
           SSVM_REQUEST_IGNORED, SSVM_UPGRADING, SSVM_UPGRADED, BACKEND_ERROR, RECOVERED, IMAGESTORE_REMOVED, DIAGNOSTICS_COLLECTED, SSVM_UNHEALTHY, SSVM_RECREATED,
           SSH_KEY_ROTATION_STARTED, SSH_KEY_PROMOTED, SSH_KEY_ROTATED, TEMPLATE_DOWNLOAD_STARTED, TEMPLATE_DOWNLOADED,
           TEMPLATE_DOWNLOAD_FAILED, TEMPLATE_MISSING, TEMPLATE_REMOVED)
REPORTER = c.MANAGED_BY
MESSAGE_MAX = 1024


@dataclass(frozen=True)
class EventSpec:
    """An Event to post on the SSVM and, with `on_zone`, on its zone too."""

    reason: str
    message: str
    type: str = "Normal"
    on_zone: bool = True


def object_ref(kind: str, namespace: str, name: str, uid: str | None) -> dict[str, Any]:
    return {"apiVersion": c.API_VERSION, "kind": kind, "namespace": namespace, "name": name, "uid": uid}


def ref_of(body: Mapping[str, Any] | None, kind: str) -> dict[str, Any] | None:
    if not body:
        return None
    meta = body["metadata"]
    return object_ref(kind, meta["namespace"], meta["name"], meta.get("uid"))


def event_body(ref: Mapping[str, Any], spec: EventSpec, now: datetime.datetime | None = None) -> dict[str, Any]:
    stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{ref['name']}.{uuid.uuid4().hex[:16]}", "namespace": ref["namespace"]},
        "involvedObject": {k: v for k, v in ref.items() if v is not None},
        "type": spec.type, "reason": spec.reason, "message": spec.message[:MESSAGE_MAX],
        "source": {"component": REPORTER}, "reportingComponent": REPORTER, "reportingInstance": REPORTER,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


class EventPoster:
    """Posts Events through the operator's client, in the background; `client=None` only counts them."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._tasks: set[asyncio.Task[None]] = set()

    def post(self, events: Sequence[EventSpec], ssvm_ref: Mapping[str, Any] | None, zone_ref: Mapping[str, Any] | None) -> None:
        """Each event on the SSVM, and on its zone too when it says so."""
        for e in events:
            metrics.record_event(e.reason, e.type)   # once per event, not per object it is posted on
            for target in (r for r in (ssvm_ref, zone_ref if e.on_zone else None) if r is not None):
                self._spawn(event_body(target, e))

    def _spawn(self, body: dict[str, Any]) -> None:
        if self.client is None:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._send(body))
        except RuntimeError:   # no loop (a synchronous caller): nothing to post from
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, body: dict[str, Any]) -> None:
        try:
            await self.client.create_event(body["metadata"]["namespace"], body)
        except Exception as e:  # noqa: BLE001 - an Event that cannot be posted never fails reconciliation
            log.debug("event %s not posted: %s", body["reason"], e)


class FailureEvents:
    """One Warning when an object's Ready starts naming a failure (the Event's reason is the failure's), one
    Normal `Recovered` when it is Ready again; nothing while it stays the same or only makes progress.
    `is_failure` tells a failure reason from progress (booting, waiting): kinds differ in which are which."""

    def __init__(self, is_failure: Callable[[str], bool]) -> None:
        self.is_failure = is_failure
        self.failing: dict[tuple[str, str], str | None] = {}

    def _failure(self, ready: Mapping[str, Any] | None) -> str | None:
        reason = (ready or {}).get("reason") or ""
        return reason if (ready or {}).get("status") == "False" and self.is_failure(reason) else None

    def seen(self, key: tuple[str, str], ready: Mapping[str, Any] | None) -> None:
        """The Ready an object had when first seen (after a restart its failure was announced already)."""
        self.failing.setdefault(key, self._failure(ready))

    def changed(self, key: tuple[str, str], name: str, ready: Mapping[str, Any] | None) -> list[EventSpec]:
        """Events for a Ready just written."""
        if ready is None:
            return []
        now, before = self._failure(ready), self.failing.get(key)
        if now is not None and now != before:
            self.failing[key] = now
            log.warning("%s/%s is failing: %s: %s", key[0], name, now, ready.get("message") or "")   # once, like the Event
            return [EventSpec(now, f"{name}: {ready.get('message') or now}"[:MESSAGE_MAX], "Warning", on_zone=False)]
        if before is not None and ready.get("status") == "True":
            self.failing[key] = None
            log.info("%s/%s is Ready again (%s cleared)", key[0], name, before)
            return [EventSpec(RECOVERED, f"{name} is Ready again ({before} cleared).", on_zone=False)]
        return []

    def forget(self, key: tuple[str, str]) -> None:
        self.failing.pop(key, None)
