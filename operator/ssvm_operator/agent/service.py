"""`service`: start, stop, restart or report the copy server (`ssvm-agent serve`) on an external host.

The external backend (QuickCloud) has no VM to power: its SSVM is this service. With systemd the
unit `ssvm-agent.service` is driven by systemctl; without it the agent starts `serve` itself, detached,
and keeps its pid in a file. Simulated guests record the state in their state dir. Every answer
carries `running` and `startedAt`, which changes whenever the service (re)starts: the SSVM's instance.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.errors import AgentError, bad_request
from ssvm_operator.agent.fileio import read_json, write_json

UNIT = "ssvm-agent.service"
OPS = ("start", "stop", "restart", "status")
STOP_WAIT_SECONDS = 10.0
SYSTEMCTL_TIMEOUT = 30.0


def _now() -> str:
    return f"{time.time():.6f}"


# --- simulated: the state is a file, nothing runs ---
def _simulated(ctx: ActionContext, op: str) -> dict:
    path = ctx.paths.var / "service.json"
    state = read_json(path, None)
    if state is None:   # a host runs its service from boot: first sight records it as started then
        state = {"running": True, "startedAt": _now()}
        write_json(path, state)
    if op == "stop":
        state = {"running": False, "startedAt": None}
    elif op == "restart" or (op == "start" and not state.get("running")):
        state = {"running": True, "startedAt": _now()}
    if op != "status":
        write_json(path, state)
    return {"op": op, "manager": "simulated", **state}


# --- systemd ---
def _systemctl(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AgentError("Timeout", f"systemctl {args[0]} did not finish in {SYSTEMCTL_TIMEOUT:g}s") from None


def _systemd(op: str) -> dict:
    if op != "status":
        done = _systemctl(op, UNIT)
        if done.returncode != 0:
            raise AgentError("ServiceControlFailed", f"systemctl {op} {UNIT}: {done.stderr.strip()[-300:]}")
    shown = _systemctl("show", UNIT, "-p", "ActiveState", "-p", "ActiveEnterTimestampMonotonic", "-p", "MainPID")
    props = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    running = props.get("ActiveState") == "active"
    return {"op": op, "manager": "systemd", "running": running,
            "startedAt": props.get("ActiveEnterTimestampMonotonic") if running else None,
            "pid": int(props.get("MainPID") or 0) or None}


# --- no systemd: a pid file the agent manages ---
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_state(ctx: ActionContext) -> dict | None:
    state = read_json(ctx.paths.var / "service.pid.json", None)
    return state if state and _alive(int(state.get("pid", 0))) else None


def serve_command(ctx: ActionContext) -> list[str]:
    root = [] if str(ctx.paths.root) == "/" else ["--root", str(ctx.paths.root)]
    return [sys.executable, "-m", "ssvm_operator.agent", *root, "serve"]


def _pidfile(ctx: ActionContext, op: str, command: list[str] | None = None) -> dict:
    path = ctx.paths.var / "service.pid.json"
    state = _pid_state(ctx)
    if op in ("stop", "restart") and state:
        pid = int(state["pid"])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while _alive(pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)   # our own child (tests): reap it so it stops counting as alive
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        path.unlink(missing_ok=True)
        state = None
    if op in ("start", "restart") and state is None:
        log = open(ctx.paths.var / "serve.log", "ab")
        proc = subprocess.Popen(command or serve_command(ctx), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)   # detached: outlives this SSH session
        state = {"pid": proc.pid, "startedAt": _now()}
        write_json(path, state)
    if state is None:
        return {"op": op, "manager": "pidfile", "running": False, "startedAt": None, "pid": None}
    return {"op": op, "manager": "pidfile", "running": True, "startedAt": state["startedAt"], "pid": state["pid"]}


def control(ctx: ActionContext, payload: dict) -> dict:
    op = payload.get("op", "status")
    if op not in OPS:
        raise bad_request(f"op must be one of {', '.join(OPS)}")
    ctx.paths.var.mkdir(parents=True, exist_ok=True)
    if ctx.simulated:
        return _simulated(ctx, op)
    if shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
        return _systemd(op)
    return _pidfile(ctx, op)
