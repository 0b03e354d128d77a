"""The agent's `service` action: simulated mode records the copy server's state; the pid-file mode runs a process."""
from __future__ import annotations

import sys

from ssvm_operator.agent import cli
from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.effects import make_effects
from ssvm_operator.agent.paths import resolve_paths
from ssvm_operator.agent.service import _pidfile


def run(tmp_path, payload):
    return cli.execute("service", payload, state_dir=str(tmp_path))


def test_simulated_service_records_start_stop_restart(tmp_path):
    code, doc = run(tmp_path, {"op": "status"})
    assert code == 0 and doc["simulated"] and doc["running"] and doc["startedAt"]
    first = doc["startedAt"]
    assert run(tmp_path, {})[1]["startedAt"] == first                  # status is the default and stable
    assert run(tmp_path, {"op": "start"})[1]["startedAt"] == first     # starting a running service changes nothing
    stopped = run(tmp_path, {"op": "stop"})[1]
    assert stopped["running"] is False and stopped["startedAt"] is None
    assert run(tmp_path, {"op": "status"})[1]["running"] is False
    started = run(tmp_path, {"op": "start"})[1]
    assert started["running"] and started["startedAt"] != first
    restarted = run(tmp_path, {"op": "restart"})[1]
    assert restarted["running"] and restarted["startedAt"] != started["startedAt"]


def test_unknown_op_is_a_bad_request(tmp_path):
    code, doc = run(tmp_path, {"op": "explode"})
    assert code == 2 and doc["reason"] == "InvalidPayload"


def test_pidfile_mode_starts_and_stops_a_process(tmp_path):
    paths, _ = resolve_paths(None, str(tmp_path))
    ctx = ActionContext(paths, make_effects(paths, False))
    paths.var.mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    up = _pidfile(ctx, "start", sleeper)
    assert up["running"] and up["pid"] and up["manager"] == "pidfile"
    assert _pidfile(ctx, "status")["pid"] == up["pid"]
    again = _pidfile(ctx, "restart", sleeper)
    assert again["running"] and again["pid"] != up["pid"]
    down = _pidfile(ctx, "stop")
    assert down["running"] is False and _pidfile(ctx, "status")["running"] is False
