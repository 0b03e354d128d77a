"""The zone's rolling update, carried out: a recreate (or reboot) request on the one SSVM
core.rollout chose, the upgrading annotation that marks it, and the annotation's removal once done.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from .. import constants as c
from ..core import events as ev
from ..core.rollout import RolloutPlan, material_hash, plan_rollout
from ..core.views import UPGRADING_ANNOTATION, SSVMView, ZoneView
from .kubeapi import ApiError
from .runtime import Runtime, object_ref, post_events

ISSUED_TTL = 60.0   # seconds an issued replacement counts as busy until the index shows its annotation


def plan(rt: Runtime, zone: ZoneView, spec: Mapping[str, Any], ssvms: list[Mapping[str, Any]], views: list[SSVMView],
         *, ready: bool) -> RolloutPlan:
    """The rollout plan, counting a replacement this process issued whose watch event has not arrived yet."""
    key = (zone.namespace, zone.name)
    issued = rt.rollout_issued.get(key)
    if issued and (time.monotonic() - issued[0] > ISSUED_TTL or any(v.name == issued[1] and v.upgrading for v in views)):
        rt.rollout_issued.pop(key, None)
        issued = None
    if issued:
        views = [dataclasses.replace(v, upgrading=issued[2]) if v.name == issued[1] else v for v in views]
    hashes = {s["metadata"]["name"]: material_hash(spec, s.get("spec")) for s in ssvms}
    return plan_rollout(zone, views, hashes, ready=ready)


async def carry_out(rt: Runtime, zone: Mapping[str, Any], ssvms: list[Mapping[str, Any]], rollout: RolloutPlan,
                    logger: Any) -> list[str]:
    ns, name = zone["metadata"]["namespace"], zone["metadata"]["name"]
    zone_ref = object_ref(c.ZONE_KIND, ns, name, zone["metadata"].get("uid"))
    failures: list[str] = []
    done = rt.rollout_done.setdefault((ns, name), set())
    uids = {s["metadata"]["name"]: s["metadata"].get("uid") for s in ssvms}
    for ssvm in rollout.finished:
        try:
            await rt.api.patch(c.SSVM_PLURAL, ns, ssvm, {"metadata": {"annotations": {UPGRADING_ANNOTATION: None}}})
        except ApiError as e:
            failures.append(f"finish upgrade of {ssvm}: {e.reason}")
            continue
        if ssvm not in done:   # the index may show the annotation once more: one Event per replacement
            done.add(ssvm)
            logger.info("rolling update: %s replaced and ready", ssvm)
            post_events([ev.EventSpec(ev.SSVM_UPGRADED, f"{ssvm} runs the zone's current template and offering.")],
                        object_ref(c.SSVM_KIND, ns, ssvm, uids.get(ssvm)), zone_ref)
    r = rollout.replace
    if r is None:
        return failures
    field = "recreateRequest" if r.action == "recreate" else "rebootRequest"
    try:
        await rt.api.patch(c.SSVM_PLURAL, ns, r.name, {"metadata": {"annotations": {UPGRADING_ANNOTATION: r.token}},
                                                        "spec": {field: r.token}})
    except ApiError as e:
        return failures + [f"upgrade {r.name}: {e.reason}"]
    rt.rollout_issued[(ns, name)] = (time.monotonic(), r.name, r.token)
    done.discard(r.name)
    rt.wake(c.SSVM_KIND, ns, r.name)
    logger.info("rolling update: %s %s (%s)", r.action, r.name, r.reason)
    post_events([ev.EventSpec(ev.SSVM_UPGRADING, f"{r.name}: {r.reason}; its VM is {r.action}d ({field} {r.token}).")],
                object_ref(c.SSVM_KIND, ns, r.name, uids.get(r.name)), zone_ref)
    return failures
