"""Signed, expiring download links (CloudStack's extractTemplate URLs): `/link/<store id>/<path>?expires=<unix>
&signature=<hex>`, the signature an HMAC-SHA256 over the path and the expiry with the key vm-setup installs.
The operator signs; the copy server checks."""
from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

PREFIX = "/link/"


def signature(key: str, path: str, expires: int) -> str:
    return hmac.new(key.encode(), f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_path(key: str, path: str, expires: int) -> str:
    """The link's path and query for `path` (relative to the mount root: `<store id>/template/...`)."""
    return f"{PREFIX}{quote(path)}?expires={expires}&signature={signature(key, path, expires)}"


def check(key_file: Path, url_path: str, now: float | None = None) -> tuple[str | None, str]:
    """(why it is refused or None, the path it names)."""
    parts = urlsplit(url_path)
    path = unquote(parts.path[len(PREFIX):])
    query = parse_qs(parts.query)
    try:
        key = key_file.read_text()
    except OSError:
        return "links are not enabled on this SSVM", path
    try:
        expires = int(query["expires"][0])
        given = query["signature"][0]
    except (KeyError, IndexError, ValueError):
        return "not a signed link", path
    if not hmac.compare_digest(given, signature(key, path, expires)):
        return "bad signature", path
    if expires < (now if now is not None else time.time()):
        return "link expired", path
    return None, path
