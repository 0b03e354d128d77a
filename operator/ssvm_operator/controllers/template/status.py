"""A Template's status from its entries: the summary columns (`kubectl get tmpl`) and its Ready condition,
whose reason and message name the stores that hold it back."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ssvm_operator.controllers.template.plan import TemplateView
from ssvm_operator.model.conditions import set_condition

READY = "Ready"


def summary(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """storesReady, progress (bytes-weighted, Ready stores at 100%) and the image's size once known."""
    wanted = [e for e in entries if e.get("state") != "Removing"]
    ready = [e for e in wanted if e.get("state") == "Ready"]
    total = sum(int(e.get("totalBytes") or e.get("bytes") or 0) for e in wanted)
    done = sum(int(e.get("totalBytes") or e.get("bytes") or 0) if e.get("state") == "Ready" else int(e.get("bytes") or 0) for e in wanted)
    if wanted and len(ready) == len(wanted):
        percent = 100
    elif total:
        percent = min(99, done * 100 // total)
    else:
        percent = 0
    out: dict[str, Any] = {"storesReady": f"{len(ready)}/{len(wanted)}", "progress": f"{percent}%"}
    sizes = [int(e["bytes"]) for e in ready if e.get("bytes") is not None]
    if sizes:
        out["size"] = sizes[0]
    return out


def _describe(e: Mapping[str, Any]) -> str:
    state = e.get("state")
    if state == "Downloading":
        pct = f" {e['percent']}%" if e.get("percent") is not None else ""
        retry = f", retrying after {e['reason']}" if e.get("reason") else ""
        return f"{e['store']} downloading{pct} on {e.get('ssvm')}{retry}"
    return f"{e['store']} {state}" + (f" ({e['reason']}: {e.get('message') or ''})" if e.get("reason") else "")


def ready_condition(t: TemplateView, entries: Sequence[Mapping[str, Any]]) -> tuple[str, str, str]:
    """(status, reason, message) of Ready."""
    wanted = [e for e in entries if e.get("state") != "Removing"]
    if t.missing_zones:
        return "False", "ZoneNotFound", f"zone(s) {', '.join(t.missing_zones)} do not exist in this namespace"
    if not t.zones:
        return "False", "NoZone", "no zone in this namespace yet (allZones)"
    if not wanted:
        return "False", "NoImageStore", f"zone(s) {', '.join(t.zones)} have no writable NFS image store"
    failed = [e for e in wanted if e.get("state") == "Error"]
    if failed:
        reasons = sorted({e.get("reason") or "DownloadFailed" for e in failed})
        reason = reasons[0] if len(reasons) == 1 else "DownloadFailed"
        return "False", reason, "; ".join(_describe(e) for e in failed)
    ready = [e for e in wanted if e.get("state") == "Ready"]
    if len(ready) == len(wanted):
        return "True", "Ready", f"on all {len(wanted)} store(s)"
    pending = [e for e in wanted if e.get("state") != "Ready"]
    reasons = {e.get("reason") for e in pending if e.get("state") == "Pending" and e.get("reason")}
    reason = "Downloading" if any(e.get("state") == "Downloading" for e in pending) or not reasons else sorted(reasons)[0]
    return "False", reason, f"{len(ready)}/{len(wanted)} stores ready; " + "; ".join(_describe(e) for e in pending)


def template_status_patch(status: Mapping[str, Any], t: TemplateView, entries: Sequence[Mapping[str, Any]], generation: int | None,
                          links: Sequence[Mapping[str, Any]] | None = None, retry_token: str | None = None) -> dict[str, Any]:
    """The fields of status that differ from `entries` and their summary; {} when nothing changed."""
    clean = [{k: v for k, v in e.items() if v is not None} for e in entries]
    wanted: dict[str, Any] = {"stores": clean, **summary(entries), "observedGeneration": generation}
    if links is not None:
        wanted["downloadLinks"] = list(links)
    if retry_token:
        wanted["observedRetryRequest"] = retry_token
    state, reason, message = ready_condition(t, entries)
    wanted["conditions"] = set_condition(status.get("conditions") or [], READY, state, reason, message[:4000], generation)
    return {k: v for k, v in wanted.items() if status.get(k) != v}
