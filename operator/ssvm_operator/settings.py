"""Operator-wide settings from the command line, handed to handlers through kopf's memo."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    scan_interval: float = 30.0  # CloudStack's secstorage.capacityscan.interval
    backend_override: str | None = None  # e.g. "memory" or "memory:/path/vms.json": one backend for every zone
    # With peering: a replica's keep-alive counts for this long; a standby takes over this long after the
    # active one last renewed it (killed, or cut off). kopf's own default is 60 s.
    peering_lifetime: int = 15
