"""An in-memory `GuestChannel` for unit tests of the reconciler: the real agent logic, simulated.

Each target (by name) gets its own simulated guest state dir; actions run in-process through the
agent's `execute`. Transport failures can be scripted per target, and every call is recorded
(payloads redacted) so tests can count pushes. `for_key(key)` gives a view that logs in with one
operator key: the guest's simulated authorized_keys decides (a guest without one was made, as by
cloud-init, with the key of its first caller).
"""
from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssvm_operator.agent import cli as agent_cli
from ssvm_operator.agent.authorized_keys import fingerprint as _fingerprint
from ssvm_operator.agent.authorized_keys import parse_key
from ssvm_operator.ssh import errors
from ssvm_operator.ssh.channel import ActionResult, GuestTarget
from ssvm_operator.model.redaction import collect_secrets, redact


@dataclass(frozen=True)
class RecordedCall:
    target: str
    action: str
    payload: dict   # redacted
    key: str | None = None   # fingerprint of the operator key used (views from for_key)


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

    def for_key(self, key: Any) -> KeyedFakeChannel:
        """A view logging in with `key` (anything with `.public` and `.fingerprint`, e.g. OperatorKey)."""
        return KeyedFakeChannel(self, key.public, key.fingerprint)

    def authorized_fingerprints(self, target: GuestTarget | str) -> list[str] | None:
        path = self.state_dir(target) / "authorized_keys"
        if not path.exists():
            return None
        return sorted(_fingerprint(parse_key(line)[1]) for line in path.read_text().splitlines()
                      if line.strip() and not line.lstrip().startswith("#"))

    def authorize(self, target: GuestTarget | str, public: str) -> None:
        """What cloud-init does: the guest's authorized_keys holds exactly these lines."""
        path = self.state_dir(target) / "authorized_keys"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(public.strip() + "\n")

    async def run_action(self, target: GuestTarget, action: str, payload: Mapping[str, Any],
                         key: tuple[str, str] | None = None) -> ActionResult:
        self.calls.append(RecordedCall(target.name, action, redact(dict(payload)), key[1] if key else None))
        if target.name in self._down:
            raise self._down[target.name]
        queued = self._failures.get(target.name)
        if queued:
            raise queued.pop(0)
        if key is not None:
            accepted = self.authorized_fingerprints(target)
            if accepted is None:
                self.authorize(target, key[0])
            elif key[1] not in accepted:
                raise errors.AuthenticationFailed(f"the guest refused the operator key {key[1]}", target.name)
        code, doc = await asyncio.to_thread(agent_cli.execute, action, dict(payload), str(self.state_dir(target)))
        return ActionResult(action, code, redact(doc, collect_secrets(payload)))

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


class KeyedFakeChannel:
    """One operator key's view of a FakeGuestChannel (shared guests, shared call log)."""

    def __init__(self, fake: FakeGuestChannel, public: str, fp: str) -> None:
        self.fake, self.public, self.key_fingerprint = fake, public, fp

    async def run_action(self, target: GuestTarget, action: str, payload: Mapping[str, Any]) -> ActionResult:
        return await self.fake.run_action(target, action, payload, key=(self.public, self.key_fingerprint))
