"""`diagnostics`: what an operator of CloudStack's SSVM would collect by hand (ssvm-check.sh, runDiagnostics):
configuration, firewall rules, mounts, routes, DNS answers, disk use per store and the agent's log, as one
JSON document. Credentials never enter it: the copy credentials and TLS key files are not read."""
from __future__ import annotations

import os
from pathlib import Path

from ssvm_operator.agent import check
from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.effects import run
from ssvm_operator.agent.errors import bad_request
from ssvm_operator.agent.fileio import read_json

LOG_LINES = 200
MAX_NAMES = 8


def _disk(path: Path) -> dict:
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return {"error": exc.strerror or type(exc).__name__}
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    return {"totalBytes": total, "freeBytes": free, "usedBytes": total - st.f_bfree * st.f_frsize}


def _log_tail(ctx: ActionContext, lines: int) -> list[str]:
    if ctx.effects.simulated:
        return []   # a simulated guest has no journal; its actions are in the dev cluster's log
    result = run(["journalctl", "-u", "ssvm-agent", "-u", "ssh", "-n", str(lines), "--no-pager", "-o", "short-iso"], timeout=10)
    return result.stdout.splitlines()[-lines:] if result.ok else [f"journalctl: {result.stderr.strip() or 'unavailable'}"]


def collect(ctx: ActionContext, payload: dict) -> dict:
    names = payload.get("names") or []
    if not isinstance(names, list) or len(names) > MAX_NAMES or not all(isinstance(n, str) and n and len(n) <= 253 for n in names):
        raise bad_request(f"names must be a list of at most {MAX_NAMES} host names")
    lines = payload.get("logLines", LOG_LINES)
    if not isinstance(lines, int) or not 0 <= lines <= 2000:
        raise bad_request("logLines must be an integer from 0 to 2000")
    stores = read_json(ctx.paths.stores, {})
    mounts = ctx.effects.mounts()
    return {
        "config": {"copyServer": read_json(ctx.paths.copy_config, None), "stores": stores, "routes": read_json(ctx.paths.routes, {})},
        "iptables": ctx.effects.iptables_rules(),
        "mounts": [{"target": t, "source": m.source, "fstype": m.fstype, "options": m.options}
                   for t, m in sorted(mounts.items()) if t.startswith(str(ctx.paths.mount_root))],
        "routes": ctx.effects.route_table(),
        "dns": {n: dict(zip(("ok", "answer"), check._resolve(n, 3.0))) for n in names},
        "disk": {sid: _disk(ctx.paths.mount_root / sid) for sid in sorted(stores)},
        "log": _log_tail(ctx, lines),
    }
