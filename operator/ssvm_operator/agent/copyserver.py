"""The copy server: the stores, read-only over HTTP(S), Basic auth, and the peers' allow-list.

Run by `ssvm-agent serve` (a systemd unit in the guest). It re-reads the files the `firewall` and
`vm-setup` actions write, so those actions never need to restart it; a change of port, scheme or
certificate rebinds the listener.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ssvm_operator.agent import credentials, links
from ssvm_operator.agent.effects import run
from ssvm_operator.agent.fileio import read_json, write_json
from ssvm_operator.agent.paths import AgentPaths

REALM = "ssvm-copy"


class CopyState:
    """What the handlers share: the paths, the session counter, and cached credentials."""

    def __init__(self, paths: AgentPaths):
        self.paths = paths
        self.active = 0
        self.served = 0
        self._lock = threading.Lock()
        self._verified: set[tuple[str, str]] = set()  # (user, sha256 of password) that passed once
        self._creds_key = None

    def allow_list(self) -> set[str]:
        return set(read_json(self.paths.copy_config, {}).get("allow", []))

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        try:
            stat = self.paths.credentials.stat()
        except FileNotFoundError:
            return False  # no credentials installed yet: nobody gets in
        key = (stat.st_mtime_ns, stat.st_size)
        token = (user, hashlib.sha256(password.encode()).hexdigest())
        with self._lock:
            if key != self._creds_key:
                self._verified.clear()
                self._creds_key = key
            if token in self._verified:
                return True
        if credentials.verify(credentials.load(self.paths.credentials), user, password):
            with self._lock:
                self._verified.add(token)
            return True
        return False

    def session(self, delta: int) -> None:
        with self._lock:
            self.active += delta
            if delta > 0:
                self.served += 1


class CopyHandler(BaseHTTPRequestHandler):
    server_version = "ssvm-copy/1"
    state: CopyState  # set on the subclass made per server

    def log_message(self, format, *args):  # noqa: A002 - keep the guest's journal quiet per request
        pass

    def _client_is_local(self) -> bool:
        return self.client_address[0].startswith("127.") or self.client_address[0] == "::1"

    def _send_text(self, status: HTTPStatus, text: str, headers: dict | None = None) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith(links.PREFIX):
            return self._serve_link()
        if self.path == "/healthz" and self._client_is_local():
            body = {"activeSessions": self.state.active, "served": self.state.served, "pid": os.getpid()}
            return self._send_text(HTTPStatus.OK, json.dumps(body))
        if self.client_address[0] not in self.state.allow_list():
            return self._send_text(HTTPStatus.FORBIDDEN, "address not allowed")
        if not self.state.authorized(self.headers.get("Authorization")):
            return self._send_text(HTTPStatus.UNAUTHORIZED, "authentication required",
                                   {"WWW-Authenticate": f'Basic realm="{REALM}"'})
        self._send_file(self._resolve(self.path))

    def _serve_link(self):
        """A signed link (anyone holding it, from anywhere, until it expires): no allow-list, no password."""
        problem, path = links.check(self.state.paths.link_secret, self.path)
        if problem:
            return self._send_text(HTTPStatus.FORBIDDEN, problem)
        self._send_file(self._inside_store(path))

    def _send_file(self, target: Path | None):
        if target is None or not target.is_file():
            return self._send_text(HTTPStatus.NOT_FOUND, "not found")
        self.state.session(+1)
        try:
            with open(target, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if self.command != "HEAD":
                    shutil.copyfileobj(fh, self.wfile, 1 << 20)
        finally:
            self.state.session(-1)

    do_HEAD = do_GET

    def _refuse_write(self):
        self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "read-only", {"Allow": "GET, HEAD"})

    do_PUT = do_POST = do_DELETE = do_PATCH = _refuse_write

    def _resolve(self, url_path: str) -> Path | None:
        """The file inside the store the URL's first segment names (a store's id); None if it would leave that store."""
        return self._inside_store(unquote(urlsplit(url_path).path))

    def _inside_store(self, relative: str) -> Path | None:
        root = self.state.paths.mount_root
        relative = relative.lstrip("/")
        store = relative.split("/", 1)[0]
        if not store or store in (".", ".."):
            return None
        base = (root / store).resolve()   # a simulated guest's store is a link to its shared export
        candidate = (root / relative).resolve()
        if candidate != base and base not in candidate.parents:
            return None
        return candidate


def ensure_certificate(paths: AgentPaths) -> None:
    """For HTTPS without a given certificate, make a self-signed one with the guest's openssl."""
    if paths.tls_cert.exists() and paths.tls_key.exists():
        return
    paths.etc.mkdir(parents=True, exist_ok=True)
    result = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                  "-subj", "/CN=ssvm-copy", "-keyout", str(paths.tls_key), "-out", str(paths.tls_cert)], timeout=60)
    if not result.ok:
        raise OSError(f"cannot generate a TLS certificate: {result.stderr.strip()[-200:]}")
    os.chmod(paths.tls_key, 0o600)


def _listener_settings(paths: AgentPaths, bind: str | None, port: int | None) -> tuple:
    config = read_json(paths.copy_config, {})
    scheme = config.get("scheme", "http")
    cert_mtime = paths.tls_cert.stat().st_mtime_ns if scheme == "https" and paths.tls_cert.exists() else None
    return (bind or config.get("bindAddress", "0.0.0.0"), port or int(config.get("port", 80)), scheme, cert_mtime)


class CopyListener(ThreadingHTTPServer):
    """Accepts in a blocking call (no polling: an idle guest costs no CPU); `close` wakes it."""

    daemon_threads = True
    _closing = False

    def serve_until_closed(self) -> None:
        while not self._closing:
            self._handle_request_noblock()   # the socket blocks: this waits for one connection

    def close(self) -> None:
        self._closing = True
        try:
            self.socket.shutdown(socket.SHUT_RDWR)   # wakes the blocked accept, which then fails
        except OSError:
            pass
        self.server_close()

    def handle_error(self, request, client_address) -> None:
        if not self._closing:
            super().handle_error(request, client_address)


def _files_stamp(paths: AgentPaths) -> tuple:
    def stamp(path: Path) -> tuple | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino
    return stamp(paths.copy_config), stamp(paths.tls_cert)


def start_listener(paths: AgentPaths, state: CopyState, settings: tuple) -> CopyListener:
    bind, port, scheme, _ = settings
    handler = type("BoundCopyHandler", (CopyHandler,), {"state": state})
    server = CopyListener((bind, port), handler)
    if scheme == "https":
        ensure_certificate(paths)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(paths.tls_cert, paths.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_until_closed, daemon=True).start()
    write_json(paths.var / "copy-server.json", {"pid": os.getpid(), "bindAddress": bind,
                                                "port": server.server_address[1], "scheme": scheme})
    return server


def serve(paths: AgentPaths, bind: str | None = None, port: int | None = None,
          stop: threading.Event | None = None, poll: float = 1.0) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set), rebinding when the settings change."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    state = CopyState(paths)
    settings = _listener_settings(paths, bind, port)
    seen = _files_stamp(paths)
    server = start_listener(paths, state, settings)
    try:
        while not stop.wait(poll):
            stamp = _files_stamp(paths)
            if stamp == seen:
                continue   # a stat per poll: the settings are parsed only when a file changed
            seen, new = stamp, _listener_settings(paths, bind, port)
            if new != settings:
                server.close()
                settings, server = new, start_listener(paths, state, new)
    finally:
        server.close()
        (paths.var / "copy-server.json").unlink(missing_ok=True)
