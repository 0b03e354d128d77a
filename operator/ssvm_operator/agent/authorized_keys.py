"""`authorized-keys`: add and remove the operator's SSH keys, for rotation without downtime."""
from __future__ import annotations

import base64
import binascii
import hashlib

from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.errors import AgentError, bad_request
from ssvm_operator.agent.fileio import write_atomic

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def parse_key(line: str) -> tuple[str, str]:
    """(type, base64 blob) of an OpenSSH public key line, options before the type allowed."""
    words = line.split()
    for i, word in enumerate(words[:-1]):
        if word in KEY_TYPES:
            try:
                base64.b64decode(words[i + 1], validate=True)
            except binascii.Error:
                break
            return word, words[i + 1]
    raise bad_request("not an OpenSSH public key line")


def fingerprint(blob_b64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def apply(ctx: ActionContext, payload: dict) -> dict:
    add, remove = payload.get("add", []), payload.get("remove", [])
    if not isinstance(add, list) or not isinstance(remove, list):
        raise bad_request("add and remove must be lists")
    path = ctx.paths.authorized_keys
    lines = path.read_text().splitlines() if path.exists() else []
    kept: list[str] = []
    present: set[str] = set()
    drop = {fingerprint(parse_key(r)[1]) if not r.startswith("SHA256:") else r for r in remove}
    removed = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            kept.append(line)
            continue
        try:
            fp = fingerprint(parse_key(line)[1])
        except AgentError:
            kept.append(line)  # not ours to judge: leave lines we cannot parse alone
            continue
        if fp in drop:
            removed.append(fp)
            continue
        kept.append(line)
        present.add(fp)
    added = []
    for line in add:
        if not isinstance(line, str) or "\n" in line or "\r" in line:
            raise bad_request("each key to add is one line")
        fp = fingerprint(parse_key(line)[1])
        if fp not in present and fp not in drop:
            kept.append(line.strip())  # options such as restrict or command= stay as given
            present.add(fp)
            added.append(fp)
    if removed and not present:
        raise AgentError("LockoutRefused", "refusing to remove every authorized key", 2)
    if added or removed:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, "\n".join(kept) + "\n", mode=0o600)
    return {"keys": sorted(present), "added": added, "removed": removed}
