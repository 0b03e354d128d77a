"""Removing secrets from anything headed for status, events, logs or exceptions."""
from __future__ import annotations

import logging
import re
from typing import Any, Iterable

REDACTED = "<redacted>"   # the one placeholder for a removed secret: payloads, text, boot arguments, manifests
# Key names (case and _/- ignored) whose values are secrets wherever they appear in a payload.
_SECRET_KEY = re.compile(r"(password|passwd|passphrase|secret|token|privatekey|apikey)", re.I)
# References to secrets and their versions name a secret without holding it.
_REFERENCE_SUFFIX = ("ref", "refs", "version", "name")
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)
_BASIC_AUTH = re.compile(r"(Authorization:\s*Basic\s+)[A-Za-z0-9+/=]+", re.I)
_MIN_SECRET_LEN = 4  # shorter values would blank out ordinary words; such secrets are refused upstream


def is_secret_key(key: Any) -> bool:
    """A key naming a secret (password, token, private key...) but not a reference to one (`...Ref`, `...Name`)."""
    if not isinstance(key, str):
        return False
    plain = key.replace("_", "").replace("-", "")
    return bool(_SECRET_KEY.search(plain)) and not plain.lower().endswith(_REFERENCE_SUFFIX)


def collect_secrets(obj: Any) -> list[str]:
    """Every string value held under a secret-looking key, at any depth."""
    found: list[str] = []

    def walk(node: Any, secret: bool) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, secret or is_secret_key(k))
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v, secret)
        elif secret and isinstance(node, str) and node:
            found.append(node)

    walk(obj, False)
    return found


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Private key blocks, Basic auth headers and every known secret value replaced by REDACTED."""
    if not isinstance(text, str):
        return text
    text = _PEM_PRIVATE.sub(REDACTED, text)
    text = _BASIC_AUTH.sub(lambda m: m.group(1) + REDACTED, text)
    for secret in sorted({s for s in secrets if isinstance(s, str) and len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of `obj` with secret-keyed values and known secret strings replaced by REDACTED."""
    secrets = list(secrets)
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_key(k) and v not in (None, "") else redact(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v, secrets) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact(v, secrets) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    return obj


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record with the known secrets and key blocks removed."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets: set[str] = set(secrets)

    def add(self, *secrets: str) -> None:
        self.secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = redact_text(message, self.secrets), ()
        return True
