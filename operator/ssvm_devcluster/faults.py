"""Injected API faults, off by default: a share of writes answered 409 Conflict, of requests answered 500 or
429 (with Retry-After), slowed down, and watch streams cut mid-way, so the operator's handling of a flaky
API server is exercised; a conflict only where a real server could answer one. Deterministic for a seed.
The test's and the simulators' own requests (kubectl, `ssvm-devcluster-simulator/...`) are spared: the
faults are for the controller under test.

  SSVM_DEVCLUSTER_FAULTS="conflict=0.05,error=0.02,throttle=0.02,slow=0.1,slowSeconds=0.2,cutWatch=30,seed=1"
  ssvm-operator devcluster --faults "conflict=0.05,error=0.02"
"""
from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field, fields

ENV = "SSVM_DEVCLUSTER_FAULTS"
# A real server answers 409 only where a write can conflict: a create (the name exists), an update (PUT with a
# resourceVersion), a patch that carries a resourceVersion; never a plain merge patch.
CONFLICT_VERBS = frozenset({"create", "update"})
SPARED_AGENTS = ("kubectl/", "ssvm-devcluster-simulator/")
_SHARES = ("conflict", "error", "throttle", "slow")


@dataclass
class FaultPlan:
    conflict: float = 0.0       # share of conflict-prone writes answered 409 Conflict, before anything is changed
    error: float = 0.0          # share of requests answered 500
    throttle: float = 0.0       # share of requests answered 429 Too Many Requests, Retry-After: 1
    slow: float = 0.0           # share of requests delayed by slowSeconds
    slowSeconds: float = 0.2    # noqa: N815 - the spec's own spelling
    cutWatch: float = 0.0       # noqa: N815 - watch streams are cut after this many seconds (0: never)
    seed: int = 1
    counts: Counter = field(default_factory=Counter, repr=False)

    def __post_init__(self) -> None:
        for name in _SHARES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"faults: {name} must be a share from 0 to 1")
        if self.slowSeconds < 0 or self.cutWatch < 0:
            raise ValueError("faults: slowSeconds and cutWatch must not be negative")
        self._random = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return any(getattr(self, name) for name in _SHARES) or self.cutWatch > 0

    @classmethod
    def parse(cls, spec: str) -> "FaultPlan":
        """`conflict=0.05,error=0.02,...`; an empty spec is no faults."""
        known = {f.name: f.type for f in fields(cls) if f.name != "counts"}
        values: dict[str, float | int] = {}
        for item in (x.strip() for x in spec.split(",") if x.strip()):
            key, sep, raw = item.partition("=")
            if not sep or key not in known:
                raise ValueError(f"faults: unknown item {item!r}; known: {', '.join(known)}")
            try:
                values[key] = int(raw) if key == "seed" else float(raw)
            except ValueError:
                raise ValueError(f"faults: {key} needs a number, got {raw!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls) -> "FaultPlan":
        return cls.parse(os.environ.get(ENV, ""))

    def decide(self, verb: str, user_agent: str, preconditioned: bool = False) -> str | None:
        """The fault for this request: "conflict", "error", "throttle", "slow", or None. `preconditioned`: a patch
        that carries a resourceVersion (it may conflict, as on a real server)."""
        if not self.active or user_agent.startswith(SPARED_AGENTS) or verb == "watch":
            return None
        roll = self._random.random()
        for name in _SHARES:
            share = getattr(self, name)
            if name == "conflict" and verb not in CONFLICT_VERBS and not (verb == "patch" and preconditioned):
                continue
            if roll < share:
                self.counts[name] += 1
                return name
            roll -= share
        return None
