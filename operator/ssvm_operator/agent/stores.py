"""`setup-store` and `remount`: NFS image stores mounted under /mnt/SecStorage/<stable id>."""
from __future__ import annotations

import re
import urllib.parse
import uuid
from pathlib import PurePosixPath

from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.errors import AgentError, bad_request
from ssvm_operator.agent.fileio import read_json, write_json

LAYOUT = ("template", "snapshots", "volumes")
# soft + bounded timeo/retrans: a dead server makes I/O fail instead of hanging the SSVM forever.
DEFAULT_OPTIONS = ("soft", "timeo=100", "retrans=3")
NFS_VERSIONS = {"3", "4", "4.0", "4.1", "4.2"}
_OPTION = re.compile(r"^[A-Za-z0-9_.=:/+-]+$")
_STORE_NAMESPACE = uuid.UUID("0d5b3b8e-58f4-4c0e-9a53-2f3c7b1e5a10")  # fixed: ids stay the same forever

# mount.nfs messages -> condition reason, first match wins.
_CLASSIFY = [
    ("NoNFSClientSupport", ("no such device", "unknown filesystem type", "not supported by kernel")),
    ("PermissionDenied", ("access denied", "permission denied", "operation not permitted")),
    ("NFSVersionUnsupported", ("protocol not supported", "version", "program not registered")),
    ("ExportNotFound", ("no such file or directory",)),
    ("Unreachable", ("connection refused", "no route to host", "timed out", "network is unreachable",
                     "name or service not known", "failed to resolve", "host is down", "connection reset")),
]


def classify_mount_failure(stderr: str, returncode: int) -> str:
    if returncode == 124:
        return "Unreachable"
    text = stderr.lower()
    for reason, needles in _CLASSIFY:
        if any(n in text for n in needles):
            return reason
    return "MountFailed"


def parse_nfs_url(url: str) -> tuple[str, str]:
    """(host, export path) of `nfs://host[:port]/path`."""
    if not isinstance(url, str):
        raise bad_request("url must be a string like nfs://host/export/path")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "nfs" or not parts.hostname or not parts.path.startswith("/"):
        raise bad_request(f"url must look like nfs://host/export/path, got {url!r}")
    path = str(PurePosixPath(parts.path))
    return parts.hostname.lower(), path


def store_id(host: str, path: str) -> str:
    """The mount directory's name: the same host and export always give the same id."""
    return str(uuid.uuid5(_STORE_NAMESPACE, f"{host.lower()}:{PurePosixPath(path)}"))


def mount_source(host: str, path: str) -> str:
    return f"[{host}]:{path}" if ":" in host else f"{host}:{path}"


def mount_options(payload: dict) -> list[str]:
    """Defaults, overridden key by key by the store's options; the NFS version from its own field."""
    given = payload.get("mountOptions") or []
    if isinstance(given, str):
        given = [o for o in given.split(",") if o]
    if not isinstance(given, list) or not all(isinstance(o, str) and _OPTION.match(o) for o in given):
        raise bad_request("mountOptions must be a list (or comma-separated string) of plain mount options")
    version = payload.get("nfsVersion")
    if version is not None:
        version = str(version)
        if version not in NFS_VERSIONS:
            raise bad_request(f"nfsVersion must be one of {sorted(NFS_VERSIONS)}")
    merged: dict[str, str] = {}
    for opt in list(DEFAULT_OPTIONS) + given:
        key = opt.split("=", 1)[0]
        if key in ("soft", "hard"):
            merged.pop("soft", None), merged.pop("hard", None)
        if key in ("vers", "nfsvers") and version is not None:
            continue
        merged[key] = opt
    if payload.get("readOnly"):
        merged.pop("rw", None)
        merged["ro"] = "ro"
    if version is not None:
        merged["vers"] = f"vers={version}"
    return list(merged.values())


def _recorded(ctx: ActionContext) -> dict:
    return read_json(ctx.paths.stores, {})


def _mount(ctx: ActionContext, source: str, target, options: list[str], timeout: float) -> None:
    supported, why = ctx.effects.nfs_client_support()
    if not supported:
        raise AgentError("NoNFSClientSupport", why)
    target.mkdir(parents=True, exist_ok=True)
    result = ctx.effects.mount(source, target, "nfs", options, timeout)
    if not result.ok:
        reason = classify_mount_failure(result.stderr, result.returncode)
        raise AgentError(reason, f"mount {source} failed: {result.stderr.strip() or 'exit ' + str(result.returncode)}")


def setup_store(ctx: ActionContext, payload: dict) -> dict:
    host, path = parse_nfs_url(payload.get("url"))
    options = mount_options(payload)
    timeout = float(payload.get("timeoutSeconds", 60))
    sid = store_id(host, path)
    target = ctx.paths.mount_root / sid
    source = mount_source(host, path)
    current = ctx.effects.mounts().get(str(target))
    if current is not None and current.source != source:
        raise AgentError("MountPointBusy", f"{target} already holds {current.source}")
    already = current is not None
    if not already:
        _mount(ctx, source, target, options, timeout)
    layout = _ensure_layout(ctx, target, read_only=bool(payload.get("readOnly")), timeout=timeout)
    stores = _recorded(ctx)
    stores[sid] = {"url": payload["url"], "source": source, "mountPoint": str(target), "options": options,
                   "readOnly": bool(payload.get("readOnly"))}
    write_json(ctx.paths.stores, stores)
    return {"storeId": sid, "mountPoint": str(target), "parentDir": str(target), "alreadyMounted": already,
            "options": options, "layout": layout}


def _ensure_layout(ctx: ActionContext, target, read_only: bool, timeout: float) -> list[str]:
    probe = ctx.effects.probe(target, timeout) if not read_only else None
    if probe is not None and probe.state != "ok":
        reason = "PermissionDenied" if probe.state == "readonly" else "StoreNotWritable"
        raise AgentError(reason, f"{target} is mounted but not writable ({probe.state}: {probe.detail})")
    present = []
    for name in LAYOUT:
        sub = target / name
        if not read_only:
            try:
                sub.mkdir(exist_ok=True)
            except OSError as exc:
                raise AgentError("PermissionDenied", f"cannot create {sub}: {exc.strerror}") from None
        if sub.is_dir():
            present.append(name)
    return present


def remount(ctx: ActionContext, payload: dict) -> dict:
    """Re-mount every recorded store (or the one named by `storeId`) whose mount is stale or gone."""
    stores = _recorded(ctx)
    wanted = payload.get("storeId")
    if wanted is not None and wanted not in stores:
        raise bad_request(f"unknown storeId {wanted!r}")
    timeout = float(payload.get("timeoutSeconds", 30))
    force = bool(payload.get("force"))
    report, failed = [], []
    mounted = ctx.effects.mounts()
    for sid, store in sorted(stores.items()):
        if wanted is not None and sid != wanted:
            continue
        target = ctx.paths.mount_root / sid
        before = ctx.effects.probe(target, timeout).state if str(target) in mounted else "unmounted"
        entry = {"storeId": sid, "before": before, "remounted": False}
        if before != "ok" or force:
            if str(target) in mounted:
                ctx.effects.umount(target, timeout)
            try:
                _mount(ctx, store["source"], target, store["options"], timeout)
                entry["remounted"] = True
            except AgentError as exc:
                entry.update(after="unmounted", reason=exc.reason, message=exc.message)
                failed.append(sid)
                report.append(entry)
                continue
        entry["after"] = ctx.effects.probe(target, timeout).state
        report.append(entry)
    if failed:
        raise AgentError("RemountFailed", f"{len(failed)} store(s) could not be remounted", stores=report)
    return {"stores": report}


def remove_store(ctx: ActionContext, payload: dict) -> dict:
    """Unmount a store the zone no longer has and forget it (the check stops expecting it); idempotent."""
    host, path = parse_nfs_url(payload.get("url"))
    timeout = float(payload.get("timeoutSeconds", 30))
    sid = store_id(host, path)
    target = ctx.paths.mount_root / sid
    mounted = str(target) in ctx.effects.mounts()
    if mounted:
        result = ctx.effects.umount(target, timeout)
        if not result.ok:
            raise AgentError("UnmountFailed", f"umount {target} failed: {result.stderr.strip() or 'exit ' + str(result.returncode)}")
    stores = _recorded(ctx)
    known = stores.pop(sid, None) is not None
    write_json(ctx.paths.stores, stores)
    if not mounted:
        try:
            target.rmdir()   # an empty mount point left behind; a non-empty directory is not ours to remove
        except OSError:
            pass
    return {"storeId": sid, "mountPoint": str(target), "wasMounted": mounted, "wasKnown": known}
