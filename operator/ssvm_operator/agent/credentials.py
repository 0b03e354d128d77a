"""The copy server's Basic-auth credentials: stored as a salted PBKDF2 hash, file mode 0600."""
from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from ssvm_operator.agent.fileio import read_json, write_json

ITERATIONS = 200_000
DEFAULT_USER = "cloud"  # CloudStack's default copy user name


def _digest(password: str, salt: bytes, iterations: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations).hex()


def load(path: Path) -> dict | None:
    return read_json(path, None)


def verify(record: dict | None, user: str, password: str) -> bool:
    if not record or not hmac.compare_digest(record.get("user", ""), user):
        return False
    expected = _digest(password, bytes.fromhex(record["salt"]), int(record["iterations"]))
    return hmac.compare_digest(expected, record["hash"])


def install(path: Path, user: str, password: str) -> bool:
    """Write the credentials unless the same ones are installed; True when the file changed."""
    current = load(path)
    if current is not None and verify(current, user, password):
        os.chmod(path, 0o600)  # repair the mode even when the content is right
        return False
    salt = os.urandom(16)
    write_json(path, {"user": user, "salt": salt.hex(), "iterations": ITERATIONS,
                      "hash": _digest(password, salt, ITERATIONS)}, mode=0o600)
    return True
