"""One download into a store: streamed in 1 MiB chunks to `.<file>.part` beside the image, resumed with an
HTTP Range (validated by If-Range) after a dropped connection, aborted when no byte comes for the stall
timeout, verified against the checksum and the format's own header, then renamed into place with its
`template.properties`. Memory stays bounded whatever the size."""
from __future__ import annotations

import errno
import hashlib
import http.client
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from ssvm_operator.agent import egress, imageformats
from ssvm_operator.agent.errors import AgentError
from ssvm_operator.agent.fileio import read_json, write_atomic, write_json

CHUNK = 1 << 20
MAX_REDIRECTS = 5
USER_AGENT = "ssvm-agent/1"
ALGORITHMS = {"sha256:": "sha256", "sha512:": "sha512", "md5:": "md5", "{SHA-256}": "sha256", "{SHA-512}": "sha512", "{MD5}": "md5"}


class DownloadError(AgentError):
    """A failed attempt: `retry` says whether another attempt may succeed."""

    def __init__(self, reason: str, message: str, retry: bool = False):
        super().__init__(reason, message)
        self.retry = retry


def parse_checksum(text: str | None) -> tuple[str, str] | None:
    """(hashlib name, lower-case hex) of `sha256:<hex>`, `{SHA-512}<hex>`...; None when no checksum is given."""
    if not text:
        return None
    for prefix, algorithm in ALGORITHMS.items():
        if text.startswith(prefix):
            digest = text[len(prefix):].lower()
            if len(digest) == hashlib.new(algorithm).digest_size * 2 and all(c in "0123456789abcdef" for c in digest):
                return algorithm, digest
    raise AgentError("InvalidPayload", "checksum must be sha256:<hex>, sha512:<hex>, md5:<hex> or {SHA-512}<hex>", 2)


@dataclass
class Request:
    """What a download job was asked to do (the job's request.json)."""

    dest_dir: Path
    file_name: str
    url: str | None = None                  # http(s) source
    source_file: Path | None = None         # or a file on another mounted store
    proxy: str | None = None                # http://host:port
    allowed_sites: list[str] = field(default_factory=list)
    authorization: str | None = None        # a peer's copy server (Basic auth)
    trusted: bool = False                   # the operator's own peer URL: no internal-address check
    mark: bool = True                       # mark sockets for the SSVM-DOWNLOAD chain
    bind_address: str | None = None         # a simulated guest's own address (a VM's kernel picks its own)
    checksum: tuple[str, str] | None = None
    image_format: str = "RAW"
    max_bytes: int | None = None
    stall_seconds: float = 120.0
    connect_timeout: float = 30.0
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def part(self) -> Path:
        return self.dest_dir / f".{self.file_name}.part"

    @property
    def part_meta(self) -> Path:
        return self.dest_dir / f".{self.file_name}.part.json"

    @property
    def target(self) -> Path:
        return self.dest_dir / self.file_name


Progress = Callable[[int, int | None], None]   # (bytes on the store, total or None)


def _classify_oserror(exc: OSError, what: str) -> DownloadError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError("NoSpace", f"the store is full: {exc.strerror}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return DownloadError("StoreNotWritable", f"cannot write {what}: {exc.strerror}")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return DownloadError("Stalled", f"no data for the stall timeout ({exc})", retry=True)
    return DownloadError("Unreachable", f"{what}: {exc.strerror or exc}", retry=True)


class _Connection(http.client.HTTPConnection):
    """Connects to an address already checked (not the name again) and marks the socket for the egress chain."""

    def __init__(self, host: str, port: int, address: str, timeout: float, mark: bool, tls_host: str | None = None,
                 bind: str | None = None):
        super().__init__(host, port, timeout=timeout)
        self.address, self.mark, self.tls_host, self.bind = address, mark, tls_host, bind
        self.tls = ssl.create_default_context()

    def connect(self) -> None:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if self.mark:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, egress.DOWNLOAD_MARK)
            sock.settimeout(self.timeout)
            if self.bind and ":" not in self.address and ipaddress.ip_address(self.address).is_loopback:
                sock.bind((self.bind, 0))
            sock.connect((self.address, self.port))
            if self._tunnel_host:
                self.sock = sock
                self._tunnel()
                sock = self.sock
            if self.tls_host:
                sock = self.tls.wrap_socket(sock, server_hostname=self.tls_host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _open(req: Request, url: str, headers: dict[str, str]) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError("InvalidURL", f"not an http(s) URL: {url}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    tls_host = parts.hostname if parts.scheme == "https" else None
    if req.proxy:
        _check_proxied(req, parts.hostname, port)
        proxy = urlsplit(req.proxy)
        proxy_port = proxy.port or 3128
        address = egress.resolve(proxy.hostname or "", proxy_port, req.connect_timeout)[0]
        conn = _Connection(proxy.hostname or "", proxy_port, address, req.connect_timeout, req.mark, tls_host, req.bind_address)
        if tls_host:
            conn.set_tunnel(parts.hostname, port)   # CONNECT through the proxy, TLS end to end
        else:
            path = url   # a plain-http proxy takes the absolute URL
    else:
        addresses = (egress.resolve(parts.hostname, port, req.connect_timeout) if req.trusted
                     else egress.checked_addresses(parts.hostname, port, req.allowed_sites, req.connect_timeout))
        conn = _Connection(parts.hostname, port, addresses[0], req.connect_timeout, req.mark, tls_host, req.bind_address)
        if req.trusted:
            # a peer SSVM's copy server (encryptCopy) has a self-signed certificate the operator does not know: encrypted, not authenticated
            conn.tls = ssl._create_unverified_context()
    try:
        conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Host": parts.netloc, **headers})
        conn.sock.settimeout(req.stall_seconds)   # connected: from now on the stall timeout bounds every wait
        response = conn.getresponse()
    except ssl.SSLError as exc:
        conn.close()
        raise DownloadError("TLSError", f"TLS with {parts.hostname} failed: {exc.reason or exc}") from None
    except OSError as exc:
        conn.close()
        raise _classify_oserror(exc, f"{parts.hostname}:{port}") from None
    except http.client.HTTPException as exc:
        conn.close()
        raise DownloadError("Unreachable", f"{parts.hostname}:{port} answered badly: {type(exc).__name__}", retry=True) from None
    return conn, response


def _check_proxied(req: Request, host: str, port: int) -> None:
    """Behind a proxy the name may not resolve here: literal addresses and names that do resolve are still checked."""
    if req.trusted:
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            egress.checked_addresses(host, port, req.allowed_sites, req.connect_timeout)
        except AgentError as exc:
            if exc.reason == "InternalAddressRefused":
                raise
        return
    egress.checked_addresses(host, port, req.allowed_sites, req.connect_timeout)


def _status_error(status: int, url: str) -> DownloadError:
    host = urlsplit(url).hostname
    if status == 404 or status == 410:
        return DownloadError("NotFound", f"{host} answered {status}: the image is not there")
    if status in (401, 403, 407):
        return DownloadError("Forbidden", f"{host} answered {status}: access denied")
    if status >= 500 or status == 429:
        return DownloadError("ServerError", f"{host} answered {status}", retry=True)
    return DownloadError("BadResponse", f"{host} answered {status}")


def _total_of(response: http.client.HTTPResponse, offset: int) -> int | None:
    if response.status == 206:
        rng = response.getheader("Content-Range") or ""
        total = rng.rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.getheader("Content-Length")
    return int(length) if length and length.isdigit() else None


def _validator(response: http.client.HTTPResponse) -> str | None:
    etag = response.getheader("ETag")
    return etag if etag and not etag.startswith("W/") else response.getheader("Last-Modified")


def _rehash(path: Path, algorithm: str) -> tuple[int, object]:
    digest = hashlib.new(algorithm)
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest


def _http_chunks(req: Request) -> tuple[Iterator[bytes], int, int | None, bool, Callable[[], None]]:
    """(chunks, offset they start at, total, resumed, close) for the URL, following redirects."""
    meta = read_json(req.part_meta, {})
    have = req.part.stat().st_size if req.part.exists() and meta.get("url") == req.url else 0
    headers: dict[str, str] = {}
    if req.authorization:
        headers["Authorization"] = req.authorization
    if have and meta.get("validator"):
        headers.update({"Range": f"bytes={have}-", "If-Range": meta["validator"]})
    url = req.url or ""
    for _ in range(MAX_REDIRECTS + 1):
        conn, response = _open(req, url, headers)
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            url = urljoin(url, response.getheader("Location"))
            conn.close()
            continue
        break
    else:
        raise DownloadError("BadResponse", f"more than {MAX_REDIRECTS} redirects")
    if response.status == 416 and have:
        conn.close()
        req.part.unlink(missing_ok=True)   # the source changed under the partial file: start over
        raise DownloadError("SourceChanged", "the source no longer has the bytes the partial file holds", retry=True)
    if response.status not in (200, 206):
        conn.close()
        raise _status_error(response.status, url)
    offset = have if response.status == 206 else 0
    total = _total_of(response, offset)
    write_json(req.part_meta, {"url": req.url, "validator": _validator(response)})

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                chunk = response.read1(CHUNK)   # what has come: a stall loses nothing already received
            except OSError as exc:
                raise _classify_oserror(exc, "the source") from None
            except http.client.IncompleteRead as exc:
                if exc.partial:
                    yield exc.partial
                raise DownloadError("ConnectionDropped", "the connection closed before the end", retry=True) from None
            if not chunk:
                return
            yield chunk

    return chunks(), offset, total, offset > 0, conn.close


def _file_chunks(req: Request) -> tuple[Iterator[bytes], int, int | None, bool, Callable[[], None]]:
    try:
        fh = open(req.source_file, "rb")   # noqa: SIM115 - closed by the returned close
    except OSError as exc:
        raise DownloadError("NotFound" if exc.errno == errno.ENOENT else "SourceUnreadable", f"{req.source_file}: {exc.strerror}") from None
    total = os.fstat(fh.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        while chunk := fh.read(CHUNK):
            yield chunk

    return chunks(), 0, total, False, fh.close


def fetch(req: Request, progress: Progress) -> dict:
    """One attempt; on success the image is in place and its properties written: returns what they say."""
    req.dest_dir.mkdir(parents=True, exist_ok=True)
    chunks, offset, total, resumed, close = _file_chunks(req) if req.source_file else _http_chunks(req)
    try:
        if req.max_bytes is not None and total is not None and total > req.max_bytes:
            raise DownloadError("TooLarge", f"the source announces {total} bytes, more than maxSizeGiB allows ({req.max_bytes})")
        algorithm = req.checksum[0] if req.checksum else "sha256"
        if offset:
            have, digest = _rehash(req.part, algorithm)
            offset = have
        else:
            digest = hashlib.new(algorithm)
        done = offset
        progress(done, total)
        try:
            with open(req.part, "ab" if offset else "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if req.max_bytes is not None and done > req.max_bytes:
                        raise DownloadError("TooLarge", f"more than maxSizeGiB allows ({req.max_bytes} bytes)")
                    progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise _classify_oserror(exc, str(req.part)) from None
    finally:
        close()
    if total is not None and done < total:
        raise DownloadError("ConnectionDropped", f"the connection closed at {done} of {total} bytes", retry=True)
    return _finish(req, digest.hexdigest(), algorithm, done, resumed)


def _finish(req: Request, digest: str, algorithm: str, size: int, resumed: bool) -> dict:
    if req.checksum and digest != req.checksum[1]:
        _discard(req)
        # a resumed file may mix two versions of the source: one more attempt from the start
        raise DownloadError("ChecksumMismatch", f"{algorithm} of the download is {digest}, expected {req.checksum[1]}", retry=resumed)
    problem, virtual = imageformats.inspect(str(req.part), req.image_format)
    if problem:
        _discard(req)
        raise DownloadError("FormatMismatch", problem)
    os.replace(req.part, req.target)
    req.part_meta.unlink(missing_ok=True)
    props = {**req.properties, "filename": req.file_name, "size": str(size), "checksum": f"{algorithm}:{digest}",
             "format": req.image_format, "virtualsize": str(virtual if virtual is not None else size),
             imageformats.EXTENSIONS[req.image_format]: "true",
             f"{imageformats.EXTENSIONS[req.image_format]}.filename": req.file_name,
             f"{imageformats.EXTENSIONS[req.image_format]}.size": str(size)}
    write_atomic(req.dest_dir / "template.properties", "".join(f"{k}={v}\n" for k, v in sorted(props.items())))
    return {"size": size, "virtualSize": virtual, "checksum": f"{algorithm}:{digest}", "completedAt": time.time()}


def _discard(req: Request) -> None:
    req.part.unlink(missing_ok=True)
    req.part_meta.unlink(missing_ok=True)
    try:
        req.dest_dir.rmdir()   # only when empty: nothing of a failed download stays
    except OSError:
        pass
