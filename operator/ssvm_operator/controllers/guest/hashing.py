"""The desired-content hash of a guest action: stable, material, and secret-free.

An action is pushed again only when this hash differs from the one last applied. Everything in the
payload counts, secrets included, but a secret enters the hash either as its Secret's
resourceVersion (when the caller knows it) or as a slow salted digest, never in clear.
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, Mapping

from ssvm_operator.model.redaction import is_secret_key

_DIGEST_ITERATIONS = 100_000  # slow on purpose: a hash in status must not make a weak password guessable


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@functools.lru_cache(maxsize=256)
def secret_digest(value: str, context: str) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", value.encode(), b"ssvm-operator/" + context.encode(), _DIGEST_ITERATIONS)
    return "pbkdf2-sha256:" + digest.hex()[:32]


def hashable_view(payload: Any, secret_versions: Mapping[str, str] | None = None, _path: str = "") -> Any:
    """The payload with each secret replaced by {"secretVersion": rv} or {"secretDigest": ...}.

    `secret_versions` maps a dotted path (e.g. "copyPassword", "tls.privateKey") to the resourceVersion
    of the Secret the value came from.
    """
    versions = secret_versions or {}
    if isinstance(payload, dict):
        out = {}
        for key, value in payload.items():
            path = f"{_path}.{key}" if _path else str(key)
            if is_secret_key(key) and value is not None:
                if path in versions:
                    out[key] = {"secretVersion": str(versions[path])}
                else:
                    out[key] = {"secretDigest": secret_digest(canonical_json(value).decode(), path)}
            else:
                out[key] = hashable_view(value, versions, path)
        return out
    if isinstance(payload, (list, tuple)):
        return [hashable_view(v, versions, f"{_path}[]") for v in payload]
    return payload


def action_hash(action: str, payload: Mapping[str, Any], secret_versions: Mapping[str, str] | None = None) -> str:
    """"sha256:<hex>" of the action and its payload, secrets accounted for without being embedded."""
    doc = {"action": action, "payload": hashable_view(dict(payload), secret_versions)}
    return "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()
