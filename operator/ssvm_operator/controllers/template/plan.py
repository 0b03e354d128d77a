"""Which template goes on which store, through which SSVM, from which source: CloudStack's template sync
as a pure function (observed state in, status entries and commands out), level-triggered: every pass
makes the template present on every writable NFS store of its zones, and drops or removes it elsewhere."""
from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ssvm_operator.agent.imageformats import EXTENSIONS
from ssvm_operator.kube import events as ev

# An error after which the source itself is the problem: a good copy on another store is used instead.
SOURCE_GONE = frozenset({"NotFound", "Unreachable", "Forbidden", "ServerError", "Stalled", "ConnectionDropped"})
# Job states the agent reports while the job process runs.
RUNNING = frozenset({"Downloading", "Retrying"})
TEMPLATE_ROOT = "template/tmpl"


@dataclass(frozen=True)
class StoreView:
    name: str
    zone: str
    url: str
    writable: bool = True


@dataclass(frozen=True)
class SSVMView:
    name: str
    zone: str
    reachable: bool                 # Running and reached by the start gate
    mounted: frozenset[str] = frozenset()   # stores it has mounted
    sessions: int = 0               # active sessions its last check reported
    session_max: int = 50
    public_ip: str | None = None
    running: bool | None = None     # Running whether reached yet or not (None: as reachable)

    @property
    def up(self) -> bool:
        return self.reachable if self.running is None else self.running


@dataclass(frozen=True)
class TemplateView:
    namespace: str
    name: str
    uid: str
    spec: Mapping[str, Any]
    zones: tuple[str, ...]          # the zones it must be in that exist
    missing_zones: tuple[str, ...] = ()
    retry: bool = False             # a new retryRequest token

    @property
    def install_dir(self) -> str:
        return f"{TEMPLATE_ROOT}/{self.namespace}/{self.name}"

    @property
    def file_name(self) -> str:
        return f"{self.name}.{EXTENSIONS[self.spec.get('format', 'RAW')]}"


@dataclass(frozen=True)
class Start:
    """Start a download job on `ssvm` for `store`, from the URL or from `peer_store` (a store holding a good copy)."""

    ssvm: str
    store: str
    job: str
    request: str
    peer_store: str | None = None
    peer_ssvm: str | None = None    # None: the peer store is mounted on `ssvm` itself (a local copy)


@dataclass(frozen=True)
class Remove:
    ssvm: str
    store: str
    job: str


@dataclass
class Plan:
    entries: list[dict[str, Any]]
    starts: list[Start] = field(default_factory=list)
    removes: list[Remove] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)   # (reason, message, type)


def job_id(uid: str, store: str) -> str:
    return f"{uid}-{hashlib.sha256(store.encode()).hexdigest()[:12]}"


def _iso(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse(text: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def retry_delay(spec: Mapping[str, Any], attempts: int) -> float:
    base = float((spec.get("download") or {}).get("retryBaseSeconds", 10))
    return min(3600.0, base * 2 ** max(0, attempts - 1))


class _Slots:
    """Free session slots per SSVM, spent as downloads are handed out in this pass."""

    def __init__(self, ssvms: Sequence[SSVMView], busy: Mapping[str, int]):
        self.free = {s.name: s.session_max - max(s.sessions, busy.get(s.name, 0)) for s in ssvms if s.reachable}

    def pick(self, candidates: Sequence[SSVMView]) -> SSVMView | None:
        usable = [s for s in candidates if self.free.get(s.name, 0) > 0]
        if not usable:
            return None
        best = max(usable, key=lambda s: (self.free[s.name], s.name))
        self.free[best.name] -= 1
        return best


def plan_template(t: TemplateView, stores: Sequence[StoreView], ssvms: Sequence[SSVMView], entries: Sequence[Mapping[str, Any]],
                  jobs: Mapping[str, Mapping[str, Any] | None], listed: Mapping[str, bool], now: datetime.datetime) -> Plan:
    """The template's entries after this pass, and what to do for them.

    `stores`: every store of the namespace's zones. `jobs`: store -> the job its SSVM reports (None: the SSVM
    does not know it; absent: not polled). `listed`: store -> whether the periodic look found the image whole."""
    wanted = {s.name: s for s in stores if s.zone in t.zones and s.writable}
    existing = {s.name for s in stores}
    current = {e["store"]: dict(e) for e in entries}
    busy: dict[str, int] = {}   # this template's downloads per SSVM: a floor under a session count its last check may predate
    for e in current.values():
        if e.get("state") == "Downloading" and e.get("ssvm"):
            busy[e["ssvm"]] = busy.get(e["ssvm"], 0) + 1
    slots = _Slots(ssvms, busy)
    plan = Plan(entries=[])
    ready_copies = {name for name, e in current.items() if e.get("state") == "Ready" and name in wanted}
    for name in sorted(set(current) - set(wanted)):
        e = current[name]
        if name not in existing or e.get("state") in ("Pending", "Error") and not e.get("bytes"):
            continue   # the store is gone, or nothing of the template is on it
        holder = holder_of(ssvms, name, e.get("ssvm"))
        if holder is not None:
            plan.removes.append(Remove(holder.name, name, job_id(t.uid, name)))
        plan.entries.append({**e, "state": "Removing", "reason": None if holder else "NoSSVM",
                             "message": f"removing the files from {name}" if holder else f"no running SSVM has {name} mounted"})
    for name, store in sorted(wanted.items()):
        e = current.get(name) or {"store": name, "zone": store.zone, "state": "Pending", "attempts": 0}
        e = _advance(t, store, e, jobs.get(name, "absent"), listed.get(name), now, plan)
        if _copy_instead(e, ready_copies - {name}):
            e = {**e, "state": "Pending", "retryTime": None}   # the source failed, a good copy exists: copy that
        if e["state"] == "Pending" and _due(e, now, t.retry):
            e = _start(t, store, e, ssvms, slots, ready_copies, now, plan)
        plan.entries.append(e)
    plan.entries.sort(key=lambda e: e["store"])
    return plan


def holder_of(ssvms: Sequence[SSVMView], store: str, preferred: str | None) -> SSVMView | None:
    """An SSVM that can act on the store: the one that ran its download if it still can (it stops the job too)."""
    able = [s for s in ssvms if s.reachable and store in s.mounted]
    return next((s for s in able if s.name == preferred), None) or (min(able, key=lambda s: s.name) if able else None)


def _due(e: Mapping[str, Any], now: datetime.datetime, retry: bool) -> bool:
    when = _parse(e.get("retryTime"))
    return retry or when is None or when <= now


def _advance(t: TemplateView, store: StoreView, e: dict[str, Any], job: Any, whole: bool | None, now: datetime.datetime,
             plan: Plan) -> dict[str, Any]:
    """The entry after what its SSVM reported (or what the periodic look found)."""
    state = e.get("state")
    if state == "Error" and t.retry:
        return {**e, "state": "Pending", "attempts": 0, "reason": None, "message": "retry requested", "retryTime": None}
    if state == "Ready":
        if whole is False:
            plan.events.append((ev.TEMPLATE_MISSING, f"{t.name} on {store.name}: the image is missing or damaged; downloading it again.",
                                "Warning"))
            return {**e, "state": "Pending", "reason": "Missing", "message": "the image was missing or damaged at the last look",
                    "percent": 0, "bytes": 0, "retryTime": None, "lastUpdateTime": _iso(now)}
        return e
    if state != "Downloading" or job == "absent":
        return e
    if job is None or job.get("state") == "Interrupted":
        why = "the SSVM no longer runs the download" if job is None else "the download process stopped (the SSVM restarted?)"
        return {**e, "state": "Pending", "reason": "Interrupted", "message": f"{why}; resuming", "retryTime": None}
    progress = {k: job[k] for k in ("bytes", "totalBytes", "percent") if job.get(k) is not None}
    attempts = max(int(e.get("attempts") or 0), int(job.get("attempts") or 0))
    if job.get("state") in RUNNING:
        retrying = job.get("state") == "Retrying"
        return {**e, **progress, "attempts": attempts, "reason": job.get("reason") if retrying else None,
                "message": (f"attempt {attempts} failed ({job.get('reason')}: {job.get('message')}); retrying" if retrying
                            else "downloading")}
    if job.get("state") == "Ready":
        plan.events.append((ev.TEMPLATE_DOWNLOADED, f"{t.name} is on {store.name} ({job.get('size')} bytes, {job.get('checksum')}).", "Normal"))
        return {**e, **progress, "state": "Ready", "percent": 100, "attempts": attempts, "reason": None, "message": "downloaded and verified",
                "installPath": job.get("installPath"), "checksum": job.get("checksum"), "bytes": job.get("size"),
                "retryTime": None, "lastUpdateTime": _iso(now)}
    reason, message = job.get("reason") or "DownloadFailed", job.get("message") or ""
    plan.events.append((ev.TEMPLATE_DOWNLOAD_FAILED, f"{t.name} on {store.name}: {reason}: {message}", "Warning"))
    return {**e, **progress, "state": "Error", "attempts": attempts, "reason": reason, "message": message, "lastUpdateTime": _iso(now)}


def _copy_instead(e: Mapping[str, Any], copies: set[str]) -> bool:
    return e.get("state") == "Error" and e.get("reason") in SOURCE_GONE and e.get("source", "url") == "url" and bool(copies)


def _peer(chosen: SSVMView, ssvms: Sequence[SSVMView], ready: set[str]) -> tuple[str, str | None] | None:
    """A store holding a good copy: mounted on the chosen SSVM (a local copy), else served by a peer SSVM's copy server."""
    local = sorted(s for s in ready if s in chosen.mounted)
    if local:
        return local[0], None
    for source in sorted(ready):
        holder = next((s for s in sorted(ssvms, key=lambda s: s.name) if s.reachable and source in s.mounted and s.public_ip), None)
        if holder is not None:
            return source, holder.name
    return None


def _start(t: TemplateView, store: StoreView, e: dict[str, Any], ssvms: Sequence[SSVMView], slots: _Slots, ready: set[str],
           now: datetime.datetime, plan: Plan) -> dict[str, Any]:
    able = [s for s in ssvms if s.reachable and s.zone == store.zone and store.name in s.mounted]
    if not able:
        return {**e, "state": "Pending", "ssvm": None, "reason": "NoSSVM",
                "message": f"no running SSVM of zone {store.zone} has {store.name} mounted yet"}
    chosen = slots.pick(able)
    if chosen is None:
        return {**e, "state": "Pending", "ssvm": None, "reason": "NoFreeSession",
                "message": f"every SSVM of zone {store.zone} serves sessionMax sessions; waiting for a free slot"}
    peer = None
    if e.get("reason") in SOURCE_GONE and e.get("source", "url") == "url":
        peer = _peer(chosen, ssvms, ready - {store.name})
    attempts = int(e.get("attempts") or 0)
    request = f"{int(now.timestamp())}-{attempts}"
    source = f"store:{peer[0]}" if peer else "url"
    plan.starts.append(Start(chosen.name, store.name, job_id(t.uid, store.name), request,
                             peer_store=peer[0] if peer else None, peer_ssvm=peer[1] if peer else None))
    if e.get("state") != "Downloading":
        via = f"a copy on {peer[0]}" if peer else "the URL"
        plan.events.append((ev.TEMPLATE_DOWNLOAD_STARTED, f"{t.name} to {store.name} by {chosen.name} from {via}.", "Normal"))
    return {**e, "state": "Downloading", "ssvm": chosen.name, "source": source, "installPath": f"{t.install_dir}/{t.file_name}",
            "reason": None, "message": f"started on {chosen.name}", "retryTime": None, "lastUpdateTime": _iso(now)}
