"""Download jobs that outlive the SSH connection: `template-download` starts one (a detached
`ssvm-agent job <id>` process holding a lock in its job directory), `jobs` reports them, `template-remove`
stops one and removes the template's files, `template-list` says what a store holds.

A job directory (`/var/lib/ssvm-agent/jobs/<id>/`) has the request (0600: it may hold a peer's copy
credentials), `state.json` (state, bytes, total, attempts, reason) and `lock`. A job whose state says it
runs but whose lock nobody holds was interrupted (a reboot): it reports `Interrupted`, and a new request
resumes from the partial file on the store.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from ssvm_operator.agent import download, imageformats, stores
from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.download import DownloadError, Request
from ssvm_operator.agent.errors import AgentError, bad_request
from ssvm_operator.agent.fileio import read_json, write_json
from ssvm_operator.agent.paths import AgentPaths

JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
INSTALL_DIR = re.compile(r"^template/tmpl/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
TEMPLATE_ROOT = "template/tmpl"
RUNNING = ("Downloading", "Retrying")
PROGRESS_EVERY = 0.5      # seconds between state writes while bytes flow
RETRY_MAX_SECONDS = 600.0
STOP_WAIT_SECONDS = 5.0
LOCK_FD_ENV = "SSVM_AGENT_JOB_LOCK_FD"   # the job's lock, taken by the action that started it


def jobs_dir(paths: AgentPaths) -> Path:
    return paths.var / "jobs"


def _job_id(value) -> str:
    if not isinstance(value, str) or not JOB_ID.match(value):
        raise bad_request("job must be 1-128 letters, digits, '.', '_' or '-'")
    return value


def _install_dir(value) -> str:
    if not isinstance(value, str) or not INSTALL_DIR.match(value) or ".." in value.split("/"):
        raise bad_request(f"installDir must be a relative path under {TEMPLATE_ROOT}/")
    return value


def _file_name(value) -> str:
    if not isinstance(value, str) or not FILE_NAME.match(value):
        raise bad_request("fileName must be a plain file name")
    return value


def store_mount(ctx: ActionContext, url) -> Path:
    """The mount point of a store this guest has mounted (the operator sets stores up before anything else)."""
    host, path = stores.parse_nfs_url(url)
    target = ctx.paths.mount_root / stores.store_id(host, path)
    if str(target) not in ctx.effects.mounts():
        raise AgentError("StoreNotMounted", f"the store {url} is not mounted on this SSVM")
    return target


def _locked(job: Path) -> bool:
    """Whether a job process holds the job's lock (it runs)."""
    try:
        with open(job / "lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False


def job_state(job: Path) -> dict | None:
    state = read_json(job / "state.json", None)
    if state and state.get("state") in RUNNING and not _locked(job):
        state = {**state, "state": "Interrupted", "reason": "Interrupted", "message": "the download process is gone (the SSVM restarted?)"}
    return state


def running_jobs(paths: AgentPaths) -> int:
    """Downloads in progress: each is a session, as a copy is."""
    root = jobs_dir(paths)
    return sum(1 for job in root.iterdir() if _locked(job)) if root.is_dir() else 0


def _request(ctx: ActionContext, payload: dict) -> dict:
    """The job's request, validated here so the job process never meets a bad one."""
    dest = store_mount(ctx, payload.get("storeUrl")) / _install_dir(payload.get("installDir"))
    file_name = _file_name(payload.get("fileName"))
    fmt = payload.get("format")
    if fmt not in imageformats.EXTENSIONS:
        raise bad_request(f"format must be one of {', '.join(imageformats.EXTENSIONS)}")
    download.parse_checksum(payload.get("checksum"))
    source = payload.get("source")
    if not isinstance(source, dict):
        raise bad_request("source must be an object with url, or store and path")
    doc = {"destDir": str(dest), "fileName": file_name, "format": fmt, "checksum": payload.get("checksum"),
           "maxBytes": payload.get("maxBytes"), "stallSeconds": float(payload.get("stallSeconds", 120)),
           "maxAttempts": int(payload.get("maxAttempts", 3)), "retryBaseSeconds": float(payload.get("retryBaseSeconds", 10)),
           "properties": {k: str(v) for k, v in (payload.get("properties") or {}).items() if re.match(r"^[a-z][a-z0-9.]*$", str(k))},
           "installPath": f"{payload['installDir']}/{file_name}", "mark": not ctx.simulated,
           "bindAddress": read_json(ctx.paths.sim / "settings.json", {}).get("sourceAddress") if ctx.simulated else None}
    if "url" in source:
        url = source["url"]
        if not isinstance(url, str) or not re.match(r"^https?://[^\s@/]+(/\S*)?$", url):
            raise bad_request("source.url must be an http(s) URL without credentials")
        sites = [s for s in source.get("allowedInternalSites") or [] if isinstance(s, str)]
        doc.update(url=url, proxy=source.get("proxy"), allowedSites=sites, authorization=source.get("authorizationToken"),
                   trusted=bool(source.get("peer")))
        doc["mark"] = doc["mark"] and not source.get("peer")   # a peer SSVM's copy server is reached on the mesh, not the egress chain
    elif "store" in source:
        doc["sourceFile"] = str(store_mount(ctx, source["store"]) / _install_dir(source.get("installDir")) / _file_name(source.get("fileName")))
    else:
        raise bad_request("source must hold url, or store with installDir and fileName")
    return doc


def _spawn(ctx: ActionContext, job: str, directory: Path) -> None:
    """Starts the job process holding the job's lock already: a `jobs` right after this never sees it unlocked."""
    package_root = Path(__file__).resolve().parents[2]   # holds ssvm_operator/ (a directory or the zipapp)
    mode = ["--state-dir", str(ctx.paths.root)] if ctx.simulated else ([] if str(ctx.paths.root) == "/" else ["--root", str(ctx.paths.root)])
    with open(directory / "lock", "a") as lock, open(directory / "log", "ab") as log:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)   # the child's inherited descriptor keeps it after ours closes
        env = {**os.environ, "PYTHONPATH": str(package_root), LOCK_FD_ENV: str(lock.fileno())}
        subprocess.Popen([sys.executable, "-m", "ssvm_operator.agent", *mode, "job", job], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=log, env=env, start_new_session=True, cwd="/", pass_fds=(lock.fileno(),))   # detached: outlives this session


def start(ctx: ActionContext, payload: dict) -> dict:
    """`template-download`: start the job unless one with this request token is known (then report it)."""
    job = _job_id(payload.get("job"))
    token = payload.get("request")
    if not isinstance(token, str) or not token:
        raise bad_request("request must be a non-empty token: the same token reports the same job")
    directory = jobs_dir(ctx.paths) / job
    current = job_state(directory)
    if current and (current.get("request") == token or _locked(directory)):
        return {"job": job, "started": False, **current}
    doc = _request(ctx, payload)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "request.json", {**doc, "request": token}, mode=0o600)
    state = {"state": "Downloading", "request": token, "bytes": 0, "totalBytes": None, "attempts": 0,
             "installPath": doc["installPath"], "startedAt": time.time()}
    write_json(directory / "state.json", state)
    _spawn(ctx, job, directory)
    return {"job": job, "started": True, **state}


def report(ctx: ActionContext, payload: dict) -> dict:
    """`jobs`: the state of the named jobs (all when none are named); an unknown job is absent."""
    wanted = payload.get("jobs")
    root = jobs_dir(ctx.paths)
    names = [_job_id(j) for j in wanted] if isinstance(wanted, list) else (sorted(p.name for p in root.iterdir()) if root.is_dir() else [])
    found = {}
    for name in names:
        state = job_state(root / name)
        if state is not None:
            found[name] = state
    return {"jobs": found}


def _stop(directory: Path) -> bool:
    state = read_json(directory / "state.json", {}) or {}
    pid = state.get("pid")
    if not pid or not _locked(directory):
        return False
    try:
        os.killpg(int(pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while _locked(directory) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def remove(ctx: ActionContext, payload: dict) -> dict:
    """`template-remove`: stop the job, forget it, and remove the template's directory from the store (idempotent)."""
    job = payload.get("job")
    stopped = False
    if job is not None:
        directory = jobs_dir(ctx.paths) / _job_id(job)
        stopped = _stop(directory)
        shutil.rmtree(directory, ignore_errors=True)
    if payload.get("storeUrl") is None:
        return {"job": job, "stopped": stopped, "removed": False}
    root = store_mount(ctx, payload.get("storeUrl"))
    target = root / _install_dir(payload.get("installDir"))
    existed = target.exists()
    try:
        shutil.rmtree(target)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise AgentError("RemoveFailed", f"cannot remove {target}: {exc.strerror}") from None
    parent = target.parent
    while parent != root / TEMPLATE_ROOT and root / TEMPLATE_ROOT in parent.parents:
        try:
            parent.rmdir()   # only empty directories: another template's files stay
        except OSError:
            break
        parent = parent.parent
    return {"job": job, "stopped": stopped, "removed": existed}


def _properties(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _digest_matches(image: Path, recorded: str | None) -> bool:
    if not recorded or ":" not in recorded:
        return True   # nothing to compare with
    algorithm, expected = recorded.split(":", 1)
    if algorithm not in ("sha256", "sha512", "md5"):
        return True
    digest = hashlib.new(algorithm)
    with open(image, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == expected


def list_store(ctx: ActionContext, payload: dict) -> dict:
    """`template-list`: each template directory under `prefix` with its properties and whether its file is whole
    (its recorded size; with `verify`, its recorded checksum too: every byte is read)."""
    root = store_mount(ctx, payload.get("storeUrl"))
    prefix = _install_dir(payload["prefix"]) if "prefix" in payload else TEMPLATE_ROOT
    base = root / prefix
    found = []
    for props_file in sorted(base.rglob("template.properties")) if base.is_dir() else []:
        props = _properties(props_file)
        image = props_file.parent / props.get("filename", "")
        size = image.stat().st_size if props.get("filename") and image.is_file() else None
        whole = size is not None and str(size) == props.get("size")
        entry = {"installDir": str(props_file.parent.relative_to(root)), "properties": props, "fileSize": size, "whole": whole}
        if whole and payload.get("verify"):
            entry["checksumOk"] = entry["whole"] = _digest_matches(image, props.get("checksum"))
        found.append(entry)
    return {"templates": found}


# --- the job process ---
class _State:
    """state.json, written at most every PROGRESS_EVERY seconds while bytes flow."""

    def __init__(self, directory: Path, base: dict):
        self.path, self.doc, self._written = directory / "state.json", dict(base), 0.0

    def update(self, force: bool = True, **fields) -> None:
        self.doc.update(fields)
        now = time.monotonic()
        if force or now - self._written >= PROGRESS_EVERY:
            self.doc["updatedAt"] = time.time()
            write_json(self.path, self.doc)
            self._written = now

    def progress(self, done: int, total: int | None) -> None:
        percent = min(100, done * 100 // total) if total else None
        self.update(force=False, bytes=done, totalBytes=total, percent=percent)


def _build(doc: dict) -> Request:
    return Request(dest_dir=Path(doc["destDir"]), file_name=doc["fileName"], url=doc.get("url"),
                   source_file=Path(doc["sourceFile"]) if doc.get("sourceFile") else None, proxy=doc.get("proxy"),
                   allowed_sites=list(doc.get("allowedSites") or []), authorization=doc.get("authorization"),
                   trusted=bool(doc.get("trusted")), mark=bool(doc.get("mark")), bind_address=doc.get("bindAddress"), checksum=download.parse_checksum(doc.get("checksum")),
                   image_format=doc["format"], max_bytes=doc.get("maxBytes"), stall_seconds=float(doc["stallSeconds"]),
                   properties=dict(doc.get("properties") or {}))


def run_job(paths: AgentPaths, job: str) -> int:
    """`ssvm-agent job <id>`: attempts until the image is in place, a failure that no retry mends, or maxAttempts
    failed attempts in a row (an attempt that brought bytes resets the count)."""
    directory = jobs_dir(paths) / _job_id(job)
    if LOCK_FD_ENV not in os.environ:
        lock = open(directory / "lock", "a")   # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0   # another process runs this job
    doc = read_json(directory / "request.json", None)
    if doc is None:
        return 1
    state = _State(directory, {**(read_json(directory / "state.json", {}) or {}), "pid": os.getpid()})
    req = _build(doc)
    failures = attempts = 0
    while True:
        attempts += 1
        before = req.part.stat().st_size if req.part.exists() else 0
        state.update(state="Downloading", attempts=attempts, reason=None, message=None, retryAt=None)
        try:
            result = download.fetch(req, state.progress)
        except AgentError as exc:
            retry = exc.retry if isinstance(exc, DownloadError) else exc.reason == "Unreachable"
            progressed = (req.part.stat().st_size if req.part.exists() else 0) > before
            failures = 1 if progressed else failures + 1
            if not retry or failures >= int(doc["maxAttempts"]):
                state.update(state="Error", reason=exc.reason, message=exc.message, failures=failures)
                return 1
            delay = min(RETRY_MAX_SECONDS, float(doc["retryBaseSeconds"]) * 2 ** (failures - 1))
            state.update(state="Retrying", reason=exc.reason, message=exc.message, failures=failures, retryAt=time.time() + delay)
            time.sleep(delay)
            continue
        except Exception as exc:  # noqa: BLE001 - the type only: the message could quote the request
            state.update(state="Error", reason="InternalError", message=f"unexpected {type(exc).__name__} in the download")
            print("".join(traceback.format_tb(exc.__traceback__)), type(exc).__name__, file=sys.stderr)   # the job's own log
            return 1
        state.update(state="Ready", bytes=result["size"], totalBytes=result["size"], percent=100, failures=0, **result)
        return 0


def stop_all(paths: AgentPaths) -> None:
    """Stop every running job (a simulated guest that stops takes its processes with it, as a VM does)."""
    root = jobs_dir(paths)
    for directory in root.iterdir() if root.is_dir() else []:
        _stop(directory)
