"""What this guest has applied since it booted, by content: a push whose `contentHash` was already applied
is answered from the ledger and not applied again (an operator that restarted before recording a result
pushes it once more), and every answer says how many times that content was asked for.

The ledger lives under `run/` (a tmpfs in a real guest): a reboot forgets it, as it forgets the mounts
and rules it describes.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.errors import AgentError, bad_request
from ssvm_operator.agent.fileio import read_json, write_json

CONTENT_HASH, LEDGER_KEY, BOOT_ID = "contentHash", "ledgerKey", "bootId"   # payload fields taken out before the action runs
_HASH = re.compile(r"^[A-Za-z0-9:_-]{8,128}$")
_KEY = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def boot_id(ctx: ActionContext) -> str:
    """This boot's id: made at the first request after boot, kept under run/ (forgotten at the next boot)."""
    path = ctx.paths.boot_id
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(uuid.uuid4().hex)
        return path.read_text().strip()


def run_once(ctx: ActionContext, action: str, payload: dict, handler: Callable[[ActionContext, dict], dict]) -> dict:
    """`handler(ctx, payload)` unless the same content was applied already; the answer carries
    `requests` (times this content was asked for) and `unchanged` (answered from the ledger). A push meant
    for another boot of this VM (`bootId`, from `info`) is refused: its content hash was made for that one."""
    expected = payload.pop(BOOT_ID, None)
    if expected is not None and expected != boot_id(ctx):
        raise AgentError("InstanceChanged", "the guest rebooted since the operator last looked: ask `info` again")
    content, key = payload.pop(CONTENT_HASH, None), payload.pop(LEDGER_KEY, "")
    if content is None:
        return handler(ctx, payload)
    if not isinstance(content, str) or not _HASH.match(content):
        raise bad_request(f"{CONTENT_HASH} must be 8 to 128 characters of [A-Za-z0-9:_-]")
    if key and (not isinstance(key, str) or not _KEY.match(key)):
        raise bad_request(f"{LEDGER_KEY} must be a lower-case DNS name")
    path = ctx.paths.ledger
    ledger: dict[str, Any] = read_json(path, {})
    slot = f"{action}:{key}"
    entry = ledger.get(slot) or {}
    if entry.get("hash") != content:
        entry = {"hash": content, "requests": 0}
    entry["requests"] = int(entry.get("requests", 0)) + 1
    ledger[slot] = entry
    write_json(path, ledger)   # counted before it runs: a failed or interrupted attempt is an attempt
    if isinstance(entry.get("result"), dict):
        return {**entry["result"], "unchanged": True, "requests": entry["requests"]}
    result = handler(ctx, payload)
    entry["result"] = result
    write_json(path, ledger)
    return {**result, "unchanged": False, "requests": entry["requests"]}
