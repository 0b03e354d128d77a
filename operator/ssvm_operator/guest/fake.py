"""An in-memory `GuestChannel` for unit tests of the reconciler: the real agent logic, simulated.

Each target (by name) gets its own simulated guest state dir; actions run in-process through the
agent's `execute`. Transport failures can be scripted per target, and every call is recorded
(payloads redacted) so tests can count pushes.
"""
from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ssvm_operator.agent import cli as agent_cli
from ssvm_operator.guest import errors
from ssvm_operator.guest.channel import ActionResult, GuestTarget
from ssvm_operator.guest.redact import collect_secrets, redact


@dataclass(frozen=True)
class RecordedCall:
    target: str
    action: str
    payload: dict   # redacted


class FakeGuestChannel:
    def __init__(self, root: str | Path | None = None):
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-guests-")
            root = self._tmp.name
        self.root = Path(root)
        self.calls: list[RecordedCall] = []
        self._failures: dict[str, list[errors.GuestError]] = {}
        self._down: dict[str, errors.GuestError] = {}

    def state_dir(self, target: GuestTarget | str) -> Path:
        name = target.name if isinstance(target, GuestTarget) else target
        return self.root / name.replace("/", "_")

    def fail_next(self, target: str, error: errors.GuestError) -> None:
        """The next call to `target` raises `error` (queue several for several calls)."""
        self._failures.setdefault(target, []).append(error)

    def set_down(self, target: str, error: errors.GuestError | None) -> None:
        """Every call to `target` raises `error` until set_down(target, None)."""
        if error is None:
            self._down.pop(target, None)
        else:
            self._down[target] = error

    def pushes(self, action: str | None = None, target: str | None = None) -> int:
        return sum(1 for c in self.calls if (action is None or c.action == action) and (target is None or c.target == target))

    async def run_action(self, target: GuestTarget, action: str, payload: Mapping[str, Any]) -> ActionResult:
        self.calls.append(RecordedCall(target.name, action, redact(dict(payload))))
        if target.name in self._down:
            raise self._down[target.name]
        queued = self._failures.get(target.name)
        if queued:
            raise queued.pop(0)
        code, doc = await asyncio.to_thread(agent_cli.execute, action, dict(payload), str(self.state_dir(target)))
        return ActionResult(action, code, redact(doc, collect_secrets(payload)))

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
