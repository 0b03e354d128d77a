"""`ssvm-agent [--state-dir DIR | --root DIR] <action>`: JSON payload on stdin, JSON result on stdout.

Exit codes: 0 done (healthy), 1 failed (see reason), 2 bad request, 3 check found problems,
4 internal error. With --state-dir (or SSVM_AGENT_STATE_DIR) the guest is simulated: mounts,
firewall rules and routes are recorded in that dir instead of applied, and every result says
"simulated": true.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import sys
import time
from typing import Callable

from ssvm_operator.agent import authorized_keys, check, copyserver, diagnostics, firewall, jobs, ledger, service, stores, vmsetup
from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.effects import make_effects
from ssvm_operator.agent.errors import EXIT_BAD_REQUEST, EXIT_INTERNAL, EXIT_OK, AgentError, bad_request
from ssvm_operator.agent.paths import resolve_paths

AGENT_VERSION = "1"
LOCK_WAIT_SECONDS = 60.0


def _info(ctx: ActionContext, payload: dict) -> dict:
    return {"agentVersion": AGENT_VERSION, "root": str(ctx.paths.root), "mountRoot": str(ctx.paths.mount_root),
            "bootId": ledger.boot_id(ctx)}


ACTIONS: dict[str, Callable[[ActionContext, dict], dict]] = {
    "info": _info,
    "setup-store": stores.setup_store,
    "remount": stores.remount,
    "remove-store": stores.remove_store,
    "firewall": firewall.apply,
    "vm-setup": vmsetup.apply,
    "check": check.run_check,
    "diagnostics": diagnostics.collect,
    "authorized-keys": authorized_keys.apply,
    "service": service.control,
    "template-download": jobs.start,
    "jobs": jobs.report,
    "template-remove": jobs.remove,
    "template-list": jobs.list_store,
}


# The configuration the operator pushes by content: applied once per content since boot (agent/ledger.py).
LEDGERED = frozenset({"setup-store", "firewall", "vm-setup"})


def _read_payload(stream) -> dict:
    text = stream.read() if stream is not None and not stream.isatty() else ""
    if not text.strip():
        return {}
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(f"stdin is not JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(payload, dict):
        raise bad_request("the payload must be a JSON object")
    return payload


class _ActionLock:
    """One action at a time per guest: two concurrent pushes must not interleave iptables edits."""

    def __init__(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "a")

    def __enter__(self):
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AgentError("Busy", "another agent action holds the lock") from None
                time.sleep(0.05)

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def execute(action: str, payload: dict, state_dir: str | None = None, root: str | None = None) -> tuple[int, dict]:
    """Run one action in-process: (exit code, result document). Used by the CLI and by test fakes."""
    paths, simulated = resolve_paths(state_dir, root)
    out: dict = {"action": action, "simulated": simulated}
    try:
        handler = ACTIONS.get(action)
        if handler is None:
            raise bad_request(f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
        ctx = ActionContext(paths, make_effects(paths, simulated))
        with _ActionLock(paths.lock):
            result = ledger.run_once(ctx, action, payload, handler) if action in LEDGERED else handler(ctx, payload)
        return EXIT_OK, {"ok": True, **out, **result}
    except AgentError as exc:
        return exc.exit_code, {"ok": False, **out, "reason": exc.reason, "message": exc.message, **exc.details}
    except Exception as exc:  # noqa: BLE001 - the type only: a message could quote the payload
        return EXIT_INTERNAL, {"ok": False, **out, "reason": "InternalError",
                               "message": f"unexpected {type(exc).__name__} in the agent"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssvm-agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", help="simulated guest: record effects under this dir")
    parser.add_argument("--root", help="real guest with the agent's files under this prefix (tests)")
    parser.add_argument("action", help=f"one of: {', '.join(sorted(ACTIONS))}, serve, job")
    parser.add_argument("job", nargs="?", help="job: the download job to run (started by template-download)")
    parser.add_argument("--bind", help="serve: address to listen on (default from the firewall action)")
    parser.add_argument("--port", type=int, help="serve: port (default 80, or 443 with encryptCopy)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_BAD_REQUEST if exc.code else EXIT_OK
    if args.action == "serve":
        paths, _ = resolve_paths(args.state_dir, args.root)
        copyserver.serve(paths, bind=args.bind, port=args.port)
        return EXIT_OK
    if args.action == "job":
        paths, _ = resolve_paths(args.state_dir, args.root)
        return jobs.run_job(paths, args.job or "")
    try:
        payload = _read_payload(sys.stdin)
    except AgentError as exc:
        code, doc = exc.exit_code, {"ok": False, "action": args.action, "reason": exc.reason, "message": exc.message}
    else:
        code, doc = execute(args.action, payload, args.state_dir, args.root)
    json.dump(doc, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
