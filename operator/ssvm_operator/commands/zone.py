"""`ssvm-operator zone status NAME` (also `kubectl ssvm zone status NAME`): one report of a zone, its
conditions, its SSVMs, its image stores and their recent Events, read with your kubeconfig. Exits 0
when the zone is Ready, 1 when it is not, 2 when it does not exist."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator.commands.kubeapi import Cluster, CommandError, add_cluster_arguments, condition

EVENTS_SHOWN = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("verb", choices=("status",), help="what to show")
    parser.add_argument("name", help="the Zone")
    add_cluster_arguments(parser)


def _cond_line(cond: dict[str, Any]) -> str:
    return f"{cond.get('type', '?'):<24} {cond.get('status', '?'):<8} {cond.get('reason', '')}: {cond.get('message', '')}".rstrip(": ")


def zone_report(zone: dict[str, Any], ssvms: list[dict[str, Any]], stores: list[dict[str, Any]], events: list[Any]) -> str:
    """The report as text (pure: the command reads, this formats)."""
    st, ready = zone.get("status") or {}, condition(zone, "Ready")
    name = zone["metadata"]["name"]
    lines = [f"Zone {name} (namespace {zone['metadata']['namespace']}): Ready={ready.get('status', 'Unknown')} "
             f"{ready.get('reason', '')}: {ready.get('message', '')}".rstrip(": "), "", "Conditions:"]
    lines += [f"  {_cond_line(x)}" for x in st.get("conditions") or []]
    lines += ["", f"SSVMs (desired {st.get('desiredSSVMs', '?')}, running {st.get('runningSSVMs', '?')}):"]
    for s in sorted(ssvms, key=lambda s: s["metadata"]["name"]):
        sst, sready = s.get("status") or {}, condition(s, "Ready")
        why = "" if sready.get("status") == "True" else f" {sready.get('reason', '')}: {sready.get('message', '')}"[:200]
        health = sst.get("health") or {}
        checked = f", last check {health['lastCheckTime']}" if health.get("lastCheckTime") else ""
        lines.append(f"  {s['metadata']['name']:<20} {s['spec'].get('role', ''):<18} {sst.get('state') or '-':<9} "
                     f"Ready={sready.get('status', 'Unknown')}{why}{checked}")
    if not ssvms:
        lines.append("  (none)")
    lines += ["", "Image stores:"]
    for store in sorted(stores, key=lambda s: s["metadata"]["name"]):
        mounted = condition(store, "Mounted")
        lines.append(f"  {store['metadata']['name']:<20} {store['spec'].get('url', ''):<40} Mounted={mounted.get('status', 'Unknown')} "
                     f"{mounted.get('reason', '')}")
    if not stores:
        lines.append("  (none)")
    lines += ["", f"Events (last {EVENTS_SHOWN}):"]
    for e in events[-EVENTS_SHOWN:]:
        lines.append(f"  {e.type:<8} {e.reason:<24} {e.involved_object.name}: {e.message}")
    if not events:
        lines.append("  (none)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        cluster = Cluster(args)
        zone = cluster.get(c.ZONE_PLURAL, args.name)
        ssvms = [s for s in cluster.list(c.SSVM_PLURAL) if s["spec"].get("zoneRef") == args.name]
        stores = [s for s in cluster.list(c.IMAGESTORE_PLURAL) if s["spec"].get("zoneRef") == args.name]
        names = {args.name} | {s["metadata"]["name"] for s in ssvms + stores}
        print(zone_report(zone, ssvms, stores, cluster.events(names)))
        return 0 if condition(zone, "Ready").get("status") == "True" else 1
    except CommandError as e:
        print(f"zone status: {e}", file=sys.stderr)
        return e.code
