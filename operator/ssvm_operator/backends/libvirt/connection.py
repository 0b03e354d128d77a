"""Connections to libvirt hosts: one per URI, opened on first use, reopened when it drops; every call
runs in a thread with a bounded timeout, so a stuck host never holds the event loop.

A `qemu+ssh`/`qemu+libssh` URI gets the SSH key from the zone's Secret: it is written to a private
file (0600 in a 0700 directory) named by the URI's `keyfile` parameter, and `known_hosts` pins the
host's key where the transport supports it. Neither the key nor its path's content reaches a status.
"""
from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from ssvm_operator.backends.base import BackendError

log = logging.getLogger(__name__)
T = TypeVar("T")
OPEN_TIMEOUT = 20.0
_SSH_TRANSPORTS = ("ssh", "libssh", "libssh2")


def libvirt_module() -> Any:
    """The libvirt binding, with libvirt's own printing of every error to stderr turned off."""
    import libvirt
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def transport_of(uri: str) -> str:
    scheme = urlsplit(uri).scheme
    return scheme.partition("+")[2]


def uri_with_credentials(uri: str, keyfile: str | None, known_hosts: str | None) -> str:
    """The URI with `keyfile` (and, for libssh transports, `known_hosts`) set; others are kept as given."""
    base, _, query_text = uri.partition("?")
    query = dict(parse_qsl(query_text))
    transport = transport_of(uri)
    if keyfile and transport in _SSH_TRANSPORTS:
        query["keyfile"] = keyfile
        query.setdefault("no_tty", "1")   # never prompt: a key that is refused fails
    if known_hosts and transport in ("libssh", "libssh2"):
        query["known_hosts"] = known_hosts
    return f"{base}?{urlencode(query, safe='/')}" if query else base


class CredentialFiles:
    """SSH keys and known_hosts for libvirt's SSH transports, in a private directory of this process."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._written: dict[str, str | None] = {}   # path -> content: a file is rewritten only when it changes

    def write(self, label: str, key: str | None, known_hosts: str | None) -> tuple[str | None, str | None]:
        if not key and not known_hosts:
            return None, None
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="ssvm-libvirt-")
            os.chmod(self._dir, 0o700)
            atexit.register(shutil.rmtree, self._dir, True)   # no key file outlives the process
        tag = hashlib.sha256(label.encode()).hexdigest()[:12]
        paths: list[str | None] = []
        for suffix, text in (("key", key), ("known_hosts", known_hosts)):
            if not text:
                paths.append(None)
                continue
            path = os.path.join(self._dir, f"{tag}.{suffix}")
            if self._written.get(path) != text or not os.path.exists(path):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(text.rstrip("\n") + "\n")
                self._written[path] = text
            paths.append(path)
        return paths[0], paths[1]


class Connections:
    """libvirt connections by URI. `opener` opens one (libvirt.open by default); tests pass their own."""

    def __init__(self, opener: Callable[[str], Any] | None = None, timeout: float = 30.0) -> None:
        self._opener = opener
        self.timeout = timeout
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()   # opening happens in worker threads

    def _connect(self, uri: str) -> Any:
        with self._lock:
            conn = self._open.get(uri)
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except Exception:   # noqa: BLE001 - a dead connection is reopened, whatever it raises
                    pass
                self._open.pop(uri, None)
            opener = self._opener or libvirt_module().open
            try:
                conn = opener(uri)
            except Exception as e:   # noqa: BLE001 - libvirtError, or any transport failure
                raise BackendError("HostUnreachable", f"cannot connect to libvirt at {redact_uri(uri)}: {first_line(e)}",
                                   15.0) from None
            if conn is None:
                raise BackendError("HostUnreachable", f"cannot connect to libvirt at {redact_uri(uri)}", 15.0)
            self._open[uri] = conn
            log.info("connected to libvirt at %s", redact_uri(uri))
            return conn

    def drop(self, uri: str) -> None:
        """Forgets a connection after a transport error: the next call opens a new one."""
        with self._lock:
            conn = self._open.pop(uri, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:   # noqa: BLE001 - closing a broken connection may fail as well
                pass

    async def call(self, uri: str, fn: Callable[[Any], T], timeout: float | None = None) -> T:
        """`fn(connection)` in a thread, within `timeout` seconds (opening included)."""
        limit = timeout or self.timeout

        def run() -> T:
            return fn(self._connect(uri))
        try:
            return await asyncio.wait_for(asyncio.to_thread(run), limit + OPEN_TIMEOUT)
        except asyncio.TimeoutError:
            self.drop(uri)
            raise BackendError("LibvirtTimeout", f"libvirt at {redact_uri(uri)} did not answer within {limit + OPEN_TIMEOUT:.0f}s",
                               15.0) from None


def redact_uri(uri: str) -> str:
    """The URI without its query (a keyfile path says where a key lives): fit for messages."""
    return uri.split("?", 1)[0]


_CREDENTIAL_PARAMS = re.compile(r"(keyfile|known_hosts)=[^&\s'\"]*")


def first_line(e: BaseException) -> str:
    """An error's first line, without where the key files are (a URI may be quoted in it)."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    return _CREDENTIAL_PARAMS.sub(r"\1=<redacted>", text)
