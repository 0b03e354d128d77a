"""`check`: what ssvm-check.sh looks at, as one JSON report (DNS, stores, management, copy server)."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import urllib.request

from ssvm_operator.agent import jobs
from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.errors import EXIT_UNHEALTHY, AgentError, bad_request
from ssvm_operator.agent.fileio import read_json


def _resolve(name: str, timeout: float) -> tuple[bool, str]:
    """getaddrinfo has no timeout of its own: run it in a thread and stop waiting after `timeout`."""
    answer: list[tuple[bool, str]] = []

    def look() -> None:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            answer.append((True, ",".join(sorted({i[4][0] for i in infos}))))
        except OSError as exc:
            answer.append((False, str(exc)))

    worker = threading.Thread(target=look, daemon=True)
    worker.start()
    worker.join(timeout)
    return answer[0] if answer else (False, f"no answer in {timeout:g}s")


def _tcp(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host}:{port} accepted a connection"
    except OSError as exc:
        return False, f"{host}:{port}: {exc.strerror or exc}"


def _copy_server(ctx: ActionContext, timeout: float) -> tuple[bool, str, int]:
    status = read_json(ctx.paths.var / "copy-server.json", None)
    if not status:
        return False, "copy server not running (no status file)", 0
    host = status["bindAddress"] if status["bindAddress"] not in ("0.0.0.0", "") else "127.0.0.1"
    url = f"{status['scheme']}://{host}:{status['port']}/healthz"
    context = ssl._create_unverified_context()  # our own server on loopback: its cert is self-signed
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            body = json.loads(resp.read())
        return True, f"{url} answered", int(body.get("activeSessions", 0))
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}", 0


def run_check(ctx: ActionContext, payload: dict) -> dict:
    timeout = float(payload.get("timeoutSeconds", 5))
    checks: list[dict] = []

    def record(name: str, ok: bool, detail: str, **extra) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail, **extra})

    names = payload.get("dnsNames", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad_request("dnsNames must be a list of host names")
    for name in names:
        record(f"dns:{name}", *_resolve(name, timeout))

    stores = read_json(ctx.paths.stores, {})
    wanted = payload.get("stores", sorted(stores))
    mounted = ctx.effects.mounts()
    for sid in wanted:
        target = ctx.paths.mount_root / sid
        if sid not in stores or str(target) not in mounted:
            record(f"store:{sid}", False, "not mounted", state="unmounted")
            continue
        probe = ctx.effects.probe(target, timeout)
        healthy = probe.state == "ok" or (probe.state == "readonly" and stores[sid].get("readOnly", False))
        record(f"store:{sid}", healthy, probe.detail or "mounted and writable", state=probe.state)

    management = payload.get("management")
    if management:
        if not isinstance(management, dict) or "host" not in management:
            raise bad_request("management must hold host and port")
        host, port = str(management["host"]), int(management.get("port", 8250))
        record("management", *_tcp(host, port, timeout))

    sessions = 0
    if payload.get("copyServer", True):
        ok, detail, sessions = _copy_server(ctx, timeout)
        record("copyServer", ok, detail)
    downloads = jobs.running_jobs(ctx.paths)   # a download is a session too: scale-out counts it

    problems = [c["name"] for c in checks if not c["ok"]]
    stale = [c["name"].split(":", 1)[1] for c in checks if c.get("state") in ("stale", "timeout")]
    report = {"healthy": not problems, "checks": checks, "problems": problems, "staleStores": stale,
              "activeSessions": sessions + downloads, "downloads": downloads}
    if problems:
        raise AgentError("Unhealthy", f"{len(problems)} check(s) failed: {', '.join(problems)}",
                         EXIT_UNHEALTHY, **report)
    return report
