"""An HTTP server of the tests that serves template images with Range and ETag, and misbehaves on request:
slow (bytes per second), a dropped connection after N bytes (once), a stall after N bytes (once). It
records every request (path, Range header, status) so a test can assert what the downloader asked for.
A request for an absolute URL (what a client sends to an HTTP proxy) is served by its path and recorded
as proxied, so the same server plays the zone's proxy."""
from __future__ import annotations

import hashlib
import os
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Behaviour:
    rate: int | None = None          # bytes per second
    drop_after: int | None = None    # close the connection after this many bytes of the body, once
    stall_after: int | None = None   # stop sending (keep the connection open) after this many bytes, once
    stall_seconds: float = 30.0
    status: int | None = None        # answer this status instead


@dataclass
class Seen:
    path: str
    range: str | None
    status: int
    sent: int = 0
    proxied_for: str | None = None   # the host of an absolute-URL request (the server acted as a proxy)


@dataclass
class HttpSource:
    files: dict[str, bytes] = field(default_factory=dict)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    tls: tuple[str, str] | None = None   # (certificate, key) files: serve HTTPS
    _server: ThreadingHTTPServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{path}"

    def add(self, path: str, data: bytes, behaviour: Behaviour | None = None) -> str:
        self.files[path] = data
        if behaviour:
            self.behaviours[path] = behaviour
        return self.url(path)

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    def start(self) -> "HttpSource":
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                proxied_for = None
                if self.path.startswith("http://"):   # a proxy request: serve the URL's path
                    proxied_for = urlsplit(self.path).hostname
                    self.path = urlsplit(self.path).path
                data = source.files.get(self.path)
                b = source.behaviours.get(self.path) or Behaviour()
                rng = self.headers.get("Range")
                if b.status or data is None:
                    status = b.status or 404
                    source.requests.append(Seen(self.path, rng, status, proxied_for=proxied_for))
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                start = 0
                if rng and rng.startswith("bytes=") and self.headers.get("If-Range") in (None, etag):
                    start = int(rng[6:].split("-")[0])
                seen = Seen(self.path, rng, 206 if start else 200, proxied_for=proxied_for)
                source.requests.append(seen)
                self.send_response(seen.status)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                body = data[start:]
                step = 64 << 10
                began = time.monotonic()
                for offset in range(0, len(body), step):
                    chunk = body[offset:offset + step]
                    if b.drop_after is not None and seen.sent + len(chunk) > b.drop_after:
                        self.wfile.write(chunk[:max(0, b.drop_after - seen.sent)])
                        seen.sent = b.drop_after
                        b.drop_after = None
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if b.stall_after is not None and seen.sent + len(chunk) > b.stall_after:
                        self.wfile.write(chunk[:max(0, b.stall_after - seen.sent)])
                        self.wfile.flush()
                        b.stall_after = None
                        source._stop.wait(b.stall_seconds)
                        self.close_connection = True
                        return
                    self.wfile.write(chunk)
                    seen.sent += len(chunk)
                    if b.rate:
                        ahead = seen.sent / b.rate - (time.monotonic() - began)
                        if ahead > 0:
                            source._stop.wait(ahead)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def qcow2_image(size: int, virtual: int = 1 << 30) -> bytes:
    """Bytes that start like a QCOW2 image of `virtual` bytes, padded with random data to `size`."""
    header = b"QFI\xfb" + (3).to_bytes(4, "big") + bytes(16) + virtual.to_bytes(8, "big")
    return header + os.urandom(size - len(header))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
