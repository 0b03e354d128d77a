"""The diagnostics bundle as a ConfigMap owned by its SSVM: one key per part, every known secret and any
private key block redacted, each part and the whole bounded well under a ConfigMap's 1 MiB."""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator.kube import events as ev
from ssvm_operator.model.conditions import utcnow
from ssvm_operator.model.redaction import redact_text
from ssvm_operator.ssh import errors

PART_MAX = 64 * 1024
TOTAL_MAX = 512 * 1024
CUT = "\n... (cut: the part was longer)\n"


def diagnostics_configmap_name(ssvm: str) -> str:
    return f"{ssvm}-diagnostics"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True, default=str)


def _lines(value: Any) -> str:
    return "\n".join(str(x) for x in value) + "\n" if isinstance(value, list) else _text(value)


def diagnostics_parts(ssvm: Mapping[str, Any], token: str, collected: str, health: Mapping[str, Any] | None,
                      report: Mapping[str, Any] | None, error: tuple[str, str] | None, secrets: Iterable[str]) -> dict[str, str]:
    """The bundle's files, redacted and cut; `report` is the agent's `diagnostics` answer (None when it failed)."""
    status = ssvm.get("status") or {}
    report = report or {}
    summary = {"ssvm": ssvm["metadata"]["name"], "namespace": ssvm["metadata"]["namespace"], "request": token,
               "collectedTime": collected, "state": status.get("state"), "conditions": status.get("conditions") or [],
               "actions": status.get("actions") or {}, "nics": status.get("nics") or {},
               "error": None if error is None else {"reason": error[0], "message": error[1]}}
    raw = {
        "summary.json": _text(summary), "check.json": _text(health or {}),
        "config.json": _text(report.get("config") or {}), "iptables.txt": _lines(report.get("iptables") or []),
        "mounts.json": _text(report.get("mounts") or []), "routes.txt": _lines(report.get("routes") or []),
        "dns.json": _text(report.get("dns") or {}), "disk.json": _text(report.get("disk") or {}),
        "agent.log": _lines(report.get("log") or []),
    }
    secrets = [s for s in secrets if s]
    parts, total = {}, 0
    for key, value in raw.items():
        value = redact_text(value, secrets)
        if len(value) > PART_MAX:
            value = value[:PART_MAX - len(CUT)] + CUT
        if total + len(value) > TOTAL_MAX:
            value = CUT
        parts[key] = value
        total += len(value)
    return parts


def diagnostics_configmap(ssvm: Mapping[str, Any], parts: Mapping[str, str]) -> dict[str, Any]:
    meta = ssvm["metadata"]
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": diagnostics_configmap_name(meta["name"]), "namespace": meta["namespace"],
                     "labels": {c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_SSVM: meta["name"]},
                     "ownerReferences": [{"apiVersion": c.API_VERSION, "kind": c.SSVM_KIND, "name": meta["name"],
                                          "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}]},
        "data": dict(parts),
    }


async def collect_bundle(run: Callable[[str, dict[str, Any]], Awaitable[Any]], cluster: Any, ssvm: Mapping[str, Any],
                         zone: Mapping[str, Any], token: str, health: Mapping[str, Any] | None, secrets: list[str]) -> dict[str, Any]:
    """Runs the guest's `diagnostics`, writes the ConfigMap, posts an Event; returns the status fields that acknowledge
    `token`. A guest that cannot answer still gets a bundle (the operator's side, and why the guest's part is missing)."""
    meta = ssvm["metadata"]
    mgmt = ((zone.get("spec") or {}).get("management") or {}).get("host")
    report, error = None, None
    try:
        result = await run("diagnostics", {"names": [mgmt] if mgmt else []})
        report = dict(result.data) if result.ok else None
        error = None if result.ok else (result.reason or "DiagnosticsFailed", result.message)
    except errors.GuestError as e:
        error = (e.reason, e.message)
    collected = utcnow()
    parts = diagnostics_parts(ssvm, token, collected, health or (ssvm.get("status") or {}).get("health"), report, error, secrets)
    await cluster.write_configmap(meta["namespace"], diagnostics_configmap(ssvm, parts))
    name = diagnostics_configmap_name(meta["name"])
    cluster.post_event(ssvm, ev.DIAGNOSTICS_COLLECTED, f"{meta['name']}: diagnostics {token} in ConfigMap {name}"
                       + (f" (the guest's part failed: {error[0]})" if error else "."), "Warning" if error else "Normal")
    return {"observedDiagnosticsRequest": token,
            "diagnostics": {"configMap": name, "collectedTime": collected, "bytes": sum(len(v) for v in parts.values())}}
