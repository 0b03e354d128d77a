from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssvm_operator.agent import cli
from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.effects import SimulatedEffects
from ssvm_operator.agent.paths import resolve_paths


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "guest"


@pytest.fixture
def ctx(state_dir: Path) -> ActionContext:
    paths, simulated = resolve_paths(str(state_dir))
    assert simulated
    return ActionContext(paths, SimulatedEffects(paths))


@pytest.fixture
def run(state_dir: Path):
    """Run an action through the agent's entry point (exit code, result document)."""
    def _run(action: str, payload: dict | None = None):
        code, doc = cli.execute(action, payload or {}, state_dir=str(state_dir))
        json.dumps(doc)  # every result must be JSON
        return code, doc
    return _run


@pytest.fixture
def faults(state_dir: Path):
    def _set(**values):
        path = state_dir / "var/lib/ssvm-agent/simulated/faults.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return _set
