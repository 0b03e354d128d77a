"""Event and condition reasons: one place, so docs, alerts and tests agree on the words."""
from __future__ import annotations

from dataclasses import dataclass

# Kubernetes Event reasons (CloudStack's SSVM_CREATED, SSVM_CREATE_FAILURE, SSVM_REBOOTED alerts and more).
SSVM_CREATED = "SSVMCreated"
SSVM_CREATE_FAILED = "SSVMCreateFailed"
SSVM_STARTED = "SSVMStarted"
SSVM_STOPPED = "SSVMStopped"
SSVM_REBOOTED = "SSVMRebooted"
SSVM_DESTROYED = "SSVMDestroyed"
SSVM_START_FAILED = "SSVMStartFailed"
SSVM_REQUEST_IGNORED = "SSVMRequestIgnored"
SSVM_UPGRADING = "SSVMUpgrading"   # the zone's rolling update replaces it (cloudstack-sysvmadm)
SSVM_UPGRADED = "SSVMUpgraded"
BACKEND_ERROR = "BackendError"

# Why the capacity planner acts.
REASON_STORE_CAPACITY = "StoreCapacity"
REASON_MIN_RUNNING = "MinRunning"
REASON_SESSION_LOAD = "SessionLoad"
REASON_RESTART_FAILED = "RestartFailed"
REASON_SCALE_IN = "ScaleIn"


@dataclass(frozen=True)
class EventSpec:
    """An Event to post on the SSVM and, with `on_zone`, on its zone too."""

    reason: str
    message: str
    type: str = "Normal"
    on_zone: bool = True
