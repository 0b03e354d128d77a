"""The start timeout: a VM that runs but whose SSH never answers is recreated, as CloudStack fails a start
whose SSH check does not pass. A wrong host key is not retried: it needs a person, not a new VM."""
from __future__ import annotations

from typing import Hashable, MutableMapping

NOT_RETRIED = frozenset({"HostKeyMismatch"})


def start_timeout_due(failing_since: MutableMapping[Hashable, tuple[str | None, float]], key: Hashable,
                      instance_id: str | None, gate_failing: bool, reason: str, now: float, timeout: float) -> bool:
    """Whether the gate has failed for `timeout` seconds on this VM instance; tracks when it started failing.

    A new instance (reboot, recreate) or a passing gate starts the count afresh.
    """
    if not gate_failing:
        failing_since.pop(key, None)
        return False
    since = failing_since.get(key)
    if since is None or since[0] != instance_id:
        failing_since[key] = (instance_id, now)
        return False
    if reason in NOT_RETRIED or now - since[1] < timeout:
        return False
    failing_since[key] = (instance_id, now)  # counted again from here if the recreate itself stalls
    return True
