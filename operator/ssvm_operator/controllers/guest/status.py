"""Pure status builders for guest operations: action records, SSVM conditions, ImageStore mounts, health.
Everything written here is already redacted by the channel; messages are cut to the schema's limits."""
from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ssvm_operator.api.ssvm import GUEST_CONDITIONS
from ssvm_operator.model.conditions import find_condition, set_condition, utcnow
from ssvm_operator.model.store_urls import URL_UNIQUE

MESSAGE_MAX = 4000


@dataclass(frozen=True)
class StoreResult:
    store: str                 # ImageStore name
    ok: bool
    reason: str | None = None
    message: str = ""
    parent_dir: str | None = None


@dataclass(frozen=True)
class ActionOutcome:
    status_key: str
    desired_hash: str
    ok: bool
    reason: str | None = None
    message: str = ""
    stores: tuple[StoreResult, ...] = ()
    transport: bool = False    # the SSH channel failed (not the agent): the guest is unreachable
    requests: int | None = None   # times the guest was asked for this content (its ledger), when it answered
    store_hashes: tuple[tuple[str, str], ...] = ()    # setup-store: (store, hash) wanted now
    stores_applied: tuple[tuple[str, str, str | None], ...] = ()  # setup-store: (store, hash, url) on the guest now


def _cut(text: str | None, limit: int = MESSAGE_MAX) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def action_record(previous: Mapping[str, Any] | None, outcome: ActionOutcome, now: str | None = None) -> dict[str, Any]:
    """status.actions.<key> after an attempt: attempts count since the desired content last changed."""
    previous = previous or {}
    same = previous.get("desiredHash") == outcome.desired_hash and previous.get("result") == "Failed"
    record = {
        "desiredHash": outcome.desired_hash,
        "appliedHash": outcome.desired_hash if outcome.ok else previous.get("appliedHash"),
        "result": "Succeeded" if outcome.ok else "Failed",
        "reason": None if outcome.ok else (outcome.reason or "Failed"),
        "message": _cut(outcome.message),
        # the guest's count when it answered (it also saw pushes a restarted operator never recorded)
        "attempts": outcome.requests if outcome.requests else ((int(previous.get("attempts") or 0) + 1) if same else 1),
        "lastAttemptTime": now or utcnow(),
    }
    if outcome.store_hashes or outcome.stores_applied:
        record["appliedStores"] = [{"store": s, "hash": h, **({"url": u} if u else {})} for s, h, u in outcome.stores_applied]
    return record


def pending_record(previous: Mapping[str, Any] | None, desired_hash: str) -> dict[str, Any] | None:
    """A desired hash not pushed this pass (waiting for a retry): recorded so status shows what is due."""
    previous = dict(previous or {})
    if previous.get("desiredHash") == desired_hash:
        return None
    previous.update(desiredHash=desired_hash, result="Pending", reason=None, message="", attempts=0)
    return previous


def _condition_from(record: Mapping[str, Any] | None, type_: str, ok_reason: str, ok_message: str) -> tuple[str, str, str]:
    if not record:
        return "Unknown", "Pending", f"{type_}: not attempted yet."
    if record.get("appliedHash") and record.get("appliedHash") == record.get("desiredHash"):
        return "True", ok_reason, ok_message
    if record.get("result") == "Failed":
        return "False", record.get("reason") or "Failed", record.get("message") or ""
    return "Unknown", "Pending", "The new content has not been pushed yet."


def guest_conditions(conditions: Sequence[Mapping[str, Any]], actions: Mapping[str, Any], *, nfs_stores: int,
                     peers: int, copy_port: int, generation: int | None) -> list[dict[str, Any]]:
    out = list(conditions)
    stores = actions.get("setupStore")
    if nfs_stores == 0 and stores and stores.get("result") == "Succeeded":
        st = ("True", "NoNFSStores", "The zone has no NFS image store to mount.")
    else:
        st = _condition_from(stores, "StoresMounted", "Mounted", f"{nfs_stores} NFS image store(s) mounted.")
    out = set_condition(out, "StoresMounted", *st, generation)
    fw = _condition_from(actions.get("firewall"), "FirewallProgrammed", "Programmed",
                         f"Copy port {copy_port} admits {peers} peer SSVM(s).")
    out = set_condition(out, "FirewallProgrammed", *fw, generation)
    return out


def blocked_conditions(conditions: Sequence[Mapping[str, Any]], reason: str, message: str,
                       generation: int | None) -> list[dict[str, Any]]:
    """StoresMounted and FirewallProgrammed False with the reason that keeps every push back (missing key material)."""
    out = list(conditions)
    for type_ in ("StoresMounted", "FirewallProgrammed"):
        out = set_condition(out, type_, "False", reason, _cut(f"Nothing is pushed to the guest: {message}", 1000), generation)
    return out


def not_running_conditions(conditions: Sequence[Mapping[str, Any]], state: str | None,
                           generation: int | None) -> list[dict[str, Any]]:
    """Guest conditions say Unknown while the SSVM is not running: what they said was about an older VM."""
    out = list(conditions)
    for type_ in GUEST_CONDITIONS:
        cond = find_condition(out, type_)
        if cond is not None and cond.get("status") != "Unknown":
            out = set_condition(out, type_, "Unknown", "NotRunning", f"The SSVM is {state or 'not running'}.", generation)
    return out


HEALTH_HEARTBEAT_SECONDS = 600   # an unchanged check result is written this often, so lastCheckTime shows checks run


def _age_seconds(stamp: str | None, now: str) -> float:
    """Seconds from an RFC 3339 time stamp to `now` (infinite when there is none or it is unreadable)."""
    try:
        parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
        return (parse(now) - parse(stamp)).total_seconds() if stamp else float("inf")
    except ValueError:
        return float("inf")


def health_status(previous: Mapping[str, Any] | None, report: Mapping[str, Any] | None, error: tuple[str, str] | None,
                  now: str | None = None, force: bool = False) -> dict[str, Any]:
    """status.health from a `check` answer (or the channel error that kept it from running); `force` (a
    checkRequest) records this check's time even when it found what the last one found."""
    previous = previous or {}
    healthy = error is None and bool(report and report.get("healthy"))
    checks = [{"name": str(c.get("name", "?"))[:253], "ok": bool(c.get("ok")), "message": _cut(str(c.get("detail", "")), 1000)}
              for c in (report or {}).get("checks", [])][:64]
    if error is not None:
        checks = [{"name": "ssh", "ok": False, "message": _cut(f"{error[0]}: {error[1]}", 1000)}]
    result = {
        "healthy": healthy,
        "consecutiveFailures": 0 if healthy else int(previous.get("consecutiveFailures") or 0) + 1,
        "activeSessions": int((report or {}).get("activeSessions") or 0) if error is None else previous.get("activeSessions", 0),
        "checks": checks,
    }
    # A check that finds what the last one found writes nothing, but for a heartbeat every 10 minutes.
    now = now or utcnow()
    unchanged = (all(previous.get(k) == v for k, v in result.items()) and not force
                 and _age_seconds(previous.get("lastCheckTime"), now) < HEALTH_HEARTBEAT_SECONDS)
    return {"lastCheckTime": previous["lastCheckTime"] if unchanged else now, **result}


def healthy_condition(conditions: Sequence[Mapping[str, Any]], health: Mapping[str, Any], error: tuple[str, str] | None,
                      problems: Iterable[str], generation: int | None) -> list[dict[str, Any]]:
    if health.get("healthy"):
        return set_condition(conditions, "Healthy", "True", "Healthy", "Every health check passed.", generation)
    if error is not None:
        return set_condition(conditions, "Healthy", "False", error[0], _cut(error[1], 1000), generation)
    names = ", ".join(problems) or "unknown"
    return set_condition(conditions, "Healthy", "False", "Unhealthy",
                         f"{health.get('consecutiveFailures')} failed check(s) in a row: {names}.", generation)


def store_mounts(status: Mapping[str, Any] | None, ssvm: str, result: StoreResult | None, live_ssvms: set[str] | None,
                 now: str | None = None) -> list[dict[str, Any]]:
    """status.mounts with this SSVM's entry set (or removed with result None), entries of gone SSVMs dropped."""
    mounts = [dict(m) for m in (status or {}).get("mounts") or [] if m.get("ssvm") != ssvm
              and (live_ssvms is None or m.get("ssvm") in live_ssvms)]
    if result is not None:
        entry: dict[str, Any] = {"ssvm": ssvm, "result": "Mounted" if result.ok else "Failed",
                                 "lastUpdateTime": now or utcnow()}
        if result.parent_dir:
            entry["parentDir"] = result.parent_dir
        if not result.ok:
            entry["reason"] = result.reason or "MountFailed"
            entry["message"] = _cut(result.message)
        mounts.append(entry)
    return sorted(mounts, key=lambda m: m["ssvm"])


def store_status_patch(status: Mapping[str, Any] | None, mounts: list[dict[str, Any]], generation: int | None) -> dict[str, Any]:
    """mounts, parentDir and the Mounted/Ready conditions of an ImageStore; empty when nothing changed."""
    status = status or {}
    conds = list(status.get("conditions") or [])
    failed = [m for m in mounts if m["result"] == "Failed"]
    mounted = [m for m in mounts if m["result"] == "Mounted"]
    if failed:
        first = failed[0]
        cond = ("False", first.get("reason") or "MountFailed",
                _cut(f"Not mounted on {', '.join(m['ssvm'] for m in failed)}: {first.get('message', '')}", 1000))
    elif mounted:
        cond = ("True", "Mounted", f"Mounted on {len(mounted)} SSVM(s).")
    else:
        cond = ("Unknown", "NoRunningSSVM", "No running SSVM of the zone has set this store up yet; the zone's Ready says why.")
    conds = set_condition(conds, "Mounted", *cond, generation)
    zone_found, unique = find_condition(conds, "ZoneFound"), find_condition(conds, URL_UNIQUE)
    if zone_found is not None and zone_found.get("status") == "False":
        ready = ("False", zone_found.get("reason") or "ZoneNotFound", zone_found.get("message") or "")
    elif unique is not None and unique.get("status") == "False":
        ready = ("False", unique.get("reason") or "DuplicateURL", unique.get("message") or "")
    elif cond[0] == "True":
        ready = ("True", "Ready", "The store is mounted by the zone's SSVMs.")
    else:
        ready = (cond[0], cond[1], cond[2])
    conds = set_condition(conds, "Ready", *ready, generation)
    patch: dict[str, Any] = {}
    if mounts != list(status.get("mounts") or []):
        patch["mounts"] = mounts
    parent = next((m["parentDir"] for m in mounted if m.get("parentDir")), status.get("parentDir"))
    if parent != status.get("parentDir"):
        patch["parentDir"] = parent
    if conds != list(status.get("conditions") or []):
        patch["conditions"] = conds
    return patch


def same_mount(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal but for the time stamp: an unchanged result is not rewritten."""
    strip = lambda m: {k: v for k, v in (m or {}).items() if k != "lastUpdateTime"}
    return strip(a) == strip(b)
