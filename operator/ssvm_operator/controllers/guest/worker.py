"""Guest operations for each SSVM: after the start gate, setup-store (every NFS store, past failures),
firewall and vm-setup, each pushed only when its desired hash differs from the applied one; then a
periodic `check` (remount stale stores, recreate after `failureThreshold` failures in a row).

`GuestOps` needs a `Cluster` (Kubernetes reads and writes), a `KeyStore`, the operator's `Logins`, the
`Mesh` and the start gate's `Reach`; the guest controller gives it kopf's indexes and the kube layer,
tests and the bench memory stand-ins.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ssvm_operator import metrics
from ssvm_operator.controllers.guest.actions import (
    FIREWALL_KEY,
    SETUP_STORE,
    GuestInputs,
    PlannedAction,
    StoreInfo,
    actions_to_push,
    REMOVE_STORE,
    applied_stores,
    plan_guest_actions,
)
from ssvm_operator.agent.ledger import BOOT_ID, CONTENT_HASH, LEDGER_KEY
from ssvm_operator.api.ssvm import GUEST_STATUS
from ssvm_operator.controllers.ssvm.start_gate import Reach, Reached
from ssvm_operator.kube import events as ev
from ssvm_operator.kube.wakeups import Stopped, Wakeups
from ssvm_operator.ssh import errors
from ssvm_operator.ssh.channel import GuestChannel, GuestTarget, Timeouts
from ssvm_operator.controllers.keys.rotation import KeyRotation, Logins
from ssvm_operator.controllers.guest.diagnostics import collect_bundle
from ssvm_operator.controllers.guest.mesh import Mesh
from ssvm_operator.controllers.keys.secrets import KeyMaterialError, KeyStore
from ssvm_operator.controllers.guest.status import (
    ActionOutcome,
    StoreResult,
    action_record,
    blocked_conditions,
    guest_conditions,
    health_status,
    healthy_condition,
    not_running_conditions,
    pending_record,
    same_mount,
    store_mounts,
    store_status_patch,
)

log = logging.getLogger(__name__)
SETTLE_RECHECK_SECONDS = 5.0


class Cluster(Protocol):
    """What guest operations read and write in Kubernetes."""

    def zone(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def stores(self, namespace: str, zone: str) -> list[Mapping[str, Any]]: ...
    def ssvm_names(self, namespace: str, zone: str) -> set[str] | None: ...
    async def get_ssvm(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    async def list_ssvms(self, namespace: str) -> list[Mapping[str, Any]]: ...
    async def update_ssvm_status(self, namespace: str, name: str, compute: Callable[[Mapping[str, Any], Mapping[str, Any]], dict]) -> None: ...
    async def update_store_status(self, namespace: str, name: str, compute: Callable[[Mapping[str, Any], Mapping[str, Any]], dict]) -> None: ...
    async def request_recreate(self, namespace: str, name: str, token: str) -> None: ...
    async def write_configmap(self, namespace: str, body: dict[str, Any]) -> None: ...
    def post_event(self, ssvm: Mapping[str, Any], reason: str, message: str, type_: str = "Normal") -> None: ...


@dataclass(frozen=True)
class GuestSettings:
    action_timeouts: Timeouts = field(default_factory=Timeouts)
    retry_base: float = 5.0         # a failed action is retried after base * 2^(attempts-1), at most retry_max
    retry_max: float = 300.0
    check_copy_server: bool = True  # off only for guests without a copy server (the in-process fake)
    check_timeout: float = 5.0


@dataclass
class _Worker:
    retry_at: dict[str, float] = field(default_factory=dict)
    next_check: float = 0.0
    blocked: str | None = None   # the key-material reason that holds every push back, logged once


def _new_token(body: Mapping[str, Any], field: str, observed: str) -> str | None:
    """A request token in spec that status has not acknowledged yet."""
    token = (body.get("spec") or {}).get(field)
    return token if token and token != (body.get("status") or {}).get(observed) else None


# what the guest controller writes itself: an event that changed only these is the echo of its own write,
# which its worker already knows (the record of unseen writes), so it wakes nobody
OWN_STATUS = GUEST_STATUS | {"conditions"}


def worker_inputs(body: Mapping[str, Any]) -> str:
    """What of an SSVM its guest worker acts on, apart from what it writes itself (one comparable string)."""
    meta = body.get("metadata") or {}
    status = {k: v for k, v in (body.get("status") or {}).items() if k not in OWN_STATUS}
    return json.dumps([meta.get("generation"), meta.get("deletionTimestamp"), body.get("spec"), status],
                      sort_keys=True, default=str)


def _requests(result: Any) -> int | None:
    """How many times the guest was asked for this content (its ledger's count), if it said."""
    value = result.data.get("requests")
    return value if isinstance(value, int) and value > 0 else None


def _spec(zone: Mapping[str, Any]) -> Mapping[str, Any]:
    return (zone.get("spec") or {}).get("secondaryStorage") or {}


class GuestOps:
    def __init__(self, cluster: Cluster, keys: KeyStore, logins: Logins, mesh: Mesh, reach: Reach,
                 settings: GuestSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cluster, self.keys, self.logins, self.mesh, self.reach = cluster, keys, logins, mesh, reach
        self.settings, self.clock = settings or GuestSettings(), clock
        self.workers: dict[tuple[str, str], _Worker] = {}
        self._inputs: dict[tuple[str, str], str] = {}   # worker_inputs of each SSVM's last event
        self.wakeups = Wakeups()
        mesh.listeners.append(self.wake_reached)
        reach.listeners.append(self.wake)   # a newly reached instance gets its actions at once
        self.rotation = KeyRotation(cluster, keys, logins, reach, self.wake)

    # --- wake-ups ---
    def _worker(self, namespace: str, name: str) -> _Worker:
        return self.workers.setdefault((namespace, name), _Worker())

    def wake(self, namespace: str, name: str) -> None:
        self.wakeups.wake((namespace, name))

    def seen(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        """An SSVM's event: wakes its worker unless only what the worker writes itself changed."""
        inputs = worker_inputs(body)
        if self._inputs.get((namespace, name)) != inputs:
            self._inputs[(namespace, name)] = inputs
            self.wake(namespace, name)

    def wake_reached(self) -> None:
        """A mesh change: only guests the gate has reached have a firewall to push (the gate wakes the others)."""
        self.wakeups.wake_all(lambda key: key in self.reach)

    def forget(self, namespace: str, name: str) -> None:
        self.workers.pop((namespace, name), None)
        self._inputs.pop((namespace, name), None)
        self.wakeups.forget((namespace, name))
        self.reach.pop((namespace, name), None)
        self.keys.forget_host(namespace, name)

    # --- the worker ---
    async def run_worker(self, namespace: str, name: str, stopped: Stopped) -> None:
        while not stopped:
            self.wakeups.clear((namespace, name))
            try:
                delay = await self.step(namespace, name)
            except Exception as e:  # the worker must outlive any one failure; logs the type only, never a payload
                log.warning("guest ops %s/%s: %s", namespace, name, type(e).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
                delay = self.settings.retry_base
            if delay is None:
                return
            await self.wakeups.sleep((namespace, name), delay, stopped)

    async def step(self, namespace: str, name: str) -> float | None:
        """One pass; returns seconds until the next one is due (None: the SSVM is gone)."""
        w = self._worker(namespace, name)
        body = await self.cluster.get_ssvm(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        status = body.get("status") or {}
        generation = body["metadata"].get("generation")
        if status.get("state") != "Running":
            w.retry_at.clear()
            w.next_check = 0.0
            conds = not_running_conditions(status.get("conditions") or [], status.get("state"), generation)
            if conds != list(status.get("conditions") or []):
                await self.cluster.update_ssvm_status(namespace, name, lambda st, _b: self._diff(
                    st, {"conditions": not_running_conditions(st.get("conditions") or [], st.get("state"), generation)}))
            return 60.0
        seen = self.reach.get((namespace, name))
        zone = self.cluster.zone(namespace, (body.get("spec") or {}).get("zoneRef", ""))
        if seen is None or zone is None:
            return 30.0   # the gate (or the zone's index) wakes this worker when it knows more
        await self.mesh.settled()
        try:
            op = await self.keys.operator_keys(zone)
            copy = await self.keys.copy_password(zone)
            link = await self.keys.link_secret(namespace)
        except KeyMaterialError as e:
            await self._blocked(w, namespace, name, generation, e)
            return self.settings.retry_base
        w.blocked = None
        stores = [self._store_info(s) for s in self.cluster.stores(namespace, zone["metadata"]["name"])
                  if not s["metadata"].get("deletionTimestamp")]
        peers = self.mesh.peers(namespace, name)
        planned = plan_guest_actions(GuestInputs(zone_spec=zone.get("spec") or {}, stores=stores, peers=peers,
                                                 instance_id=seen.boot_id or seen.instance_id, copy_password=copy.value,
                                                 copy_password_version=copy.version, link_secret=link.value,
                                                 link_secret_version=link.version))
        applied = status.get("actions") or {}
        now = self.clock()
        due = [p for p in actions_to_push(planned, applied) if not self._backing_off(w, p, applied, now)]
        target = GuestTarget(name=f"{namespace}/{name}", address=seen.address, host_key=seen.host_key, port=seen.port,
                             zone=zone["metadata"]["name"])
        channel = self.rotation.keyring(op, self.settings.action_timeouts)
        outcomes: list[ActionOutcome] = []
        for p in due:
            outcome = await self._push(channel, target, p, applied, seen.boot_id)
            if outcome.reason == INSTANCE_CHANGED:
                self.reach.pop((namespace, name), None)   # the gate looks again; its pass wakes this worker
                return 5.0
            outcomes.append(outcome)
            if outcome.transport:
                break   # the guest is unreachable: the rest waits for the next pass
        asked = _new_token(body, "checkRequest", "observedCheckRequest")
        diagnose = _new_token(body, "diagnosticsRequest", "observedDiagnosticsRequest")
        # a new allow-list alone (the mesh changed) changes nothing a check looks at: no check for it
        configured = any(o.status_key != FIREWALL_KEY for o in outcomes)
        health_patch, recreate = await self._health(w, body, zone, seen, channel, target, configured, asked, force=bool(diagnose))
        extra: dict[str, Any] = {}
        if diagnose:
            host = self.keys.cached_host_key(body)
            secrets = [copy.value, link.value, *(k.private for k in op.ring), *([host.private] if host else [])]
            extra = await collect_bundle(lambda action, payload: self._run(channel, target, action, payload), self.cluster,
                                         body, zone, diagnose, (health_patch or {}).get("health"), secrets)
        nfs = sum(1 for s in stores if s.protocol == "nfs")
        await self._write(namespace, name, planned, outcomes, health_patch, nfs, len(peers), seen, extra)
        for outcome in outcomes:
            self._schedule_retry(w, outcome, applied)
            if outcome.status_key == "setupStore":
                await self._write_stores(namespace, zone["metadata"]["name"], name, outcome)
        if recreate:
            await self._recreate(body, recreate)
        else:
            await self.rotation.step(body, op, seen.instance_id, target, self.settings.action_timeouts)
        waits = [w.next_check - self.clock()] + [t - self.clock() for t in w.retry_at.values()]
        return max(0.05, min(waits))

    def _backing_off(self, w: _Worker, p: PlannedAction, applied: Mapping[str, Any], now: float) -> bool:
        rec = applied.get(p.status_key) or {}
        return rec.get("result") == "Failed" and rec.get("desiredHash") == p.desired_hash and now < w.retry_at.get(p.status_key, 0.0)

    def _schedule_retry(self, w: _Worker, outcome: ActionOutcome, applied: Mapping[str, Any]) -> None:
        if outcome.ok:
            w.retry_at.pop(outcome.status_key, None)
            return
        rec = action_record(applied.get(outcome.status_key), outcome)
        w.retry_at[outcome.status_key] = self.clock() + min(self.settings.retry_max,
                                                            self.settings.retry_base * 2 ** (rec["attempts"] - 1))

    @staticmethod
    def _store_info(body: Mapping[str, Any]) -> StoreInfo:
        spec = body.get("spec") or {}
        return StoreInfo(name=body["metadata"]["name"], url=spec.get("url", ""), protocol=spec.get("protocol", "nfs"),
                         nfs_version=spec.get("nfsVersion"), mount_options=tuple(spec.get("mountOptions") or ()),
                         read_only=bool(spec.get("readOnly", False)))

    async def _run(self, channel: GuestChannel, target: GuestTarget, action: str, payload: Mapping[str, Any]):
        started = self.clock()
        try:
            result = await channel.run_action(target, action, payload)
        except errors.GuestError as e:
            metrics.record_action(action, False, e.reason, self.clock() - started, target.namespace, target.zone)
            raise
        metrics.record_action(action, result.ok, result.reason or "", self.clock() - started, target.namespace, target.zone)
        return result

    async def _push(self, channel: GuestChannel, target: GuestTarget, p: PlannedAction, applied: Mapping[str, Any],
                    boot: str | None = None) -> ActionOutcome:
        """Pushes one planned action; each payload carries its content hash, so a guest that applied it already
        (before an operator restart) answers without applying it again."""
        if p.action == SETUP_STORE:
            return await self._push_stores(channel, target, p, applied_stores(applied.get(p.status_key)), boot)
        try:
            r = await self._run(channel, target, p.action, {**p.payloads[0], CONTENT_HASH: p.desired_hash, **_boot(boot)})
        except errors.GuestError as e:
            return ActionOutcome(p.status_key, p.desired_hash, False, e.reason, e.message, transport=True)
        if r.ok:
            message = (f"copy port {r.data.get('port')} admits {len(r.data.get('peers') or [])} peer(s)" if p.action == "firewall"
                       else f"{len(r.data.get('allowedInternalSites') or [])} internal site(s), copy credentials installed")
        else:
            message = r.message
        return ActionOutcome(p.status_key, p.desired_hash, r.ok, r.reason, message, requests=_requests(r))

    async def _push_stores(self, channel: GuestChannel, target: GuestTarget, p: PlannedAction,
                           done: Mapping[str, tuple[str, str | None]], boot: str | None = None) -> ActionOutcome:
        """setup-store, one store at a time, only for stores whose content is not applied yet; then remove-store
        for stores set up before that the zone no longer has (the store was deleted)."""
        wanted = tuple(zip(p.store_names, p.store_hashes))
        urls = {store: payload.get("url") for store, payload in zip(p.store_names, p.payloads)}
        on_guest = {store: (h, url) for store, (h, url) in done.items()}   # store -> (hash, url) applied
        results: list[StoreResult] = []
        requests: list[int] = []
        removed: list[str] = []
        forgotten: list[str] = []

        def outcome(ok: bool, reason: str | None, message: str, transport: bool = False) -> ActionOutcome:
            return ActionOutcome(p.status_key, p.desired_hash, ok, reason, message, tuple(results), transport=transport,
                                 requests=max(requests) if requests else None, store_hashes=wanted,
                                 stores_applied=tuple(sorted((s, h, u) for s, (h, u) in on_guest.items())))

        for (store, content), payload in zip(wanted, p.payloads):
            if on_guest.get(store, ("", None))[0] == content:
                continue
            try:
                r = await self._run(channel, target, p.action, {**payload, CONTENT_HASH: content, LEDGER_KEY: store, **_boot(boot)})
                if r.reason == INSTANCE_CHANGED:
                    return outcome(False, r.reason, r.message, transport=True)
            except errors.GuestError as e:
                return outcome(False, e.reason, e.message, transport=True)
            parent = r.data.get("parentDir")
            results.append(StoreResult(store, r.ok, r.reason, f"mounted at {parent}" if r.ok else r.message, parent))
            requests.append(_requests(r) or 1)
            if r.ok:
                on_guest[store] = (content, urls.get(store))
        for store in sorted(set(on_guest) - {s for s, _ in wanted}):
            url = on_guest[store][1]
            if not url:   # an entry without its URL cannot be unmounted by name: it is only forgotten
                del on_guest[store]
                forgotten.append(store)
                continue
            try:
                r = await self._run(channel, target, REMOVE_STORE, {"url": url})
            except errors.GuestError as e:
                return outcome(False, e.reason, e.message, transport=True)
            if not r.ok:
                results.append(StoreResult(store, False, r.reason, f"unmounting the removed store failed: {r.message}"))
                continue
            del on_guest[store]
            removed.append(store)
        bad = [s for s in results if not s.ok]
        message = "; ".join([f"{s.store}: {s.message if s.ok else f'{s.reason}: {s.message}'}" for s in results]
                            + [f"{s}: removed and unmounted" for s in removed] + [f"{s}: removed (its URL unknown)" for s in forgotten])
        if not message:
            message = f"{len(wanted)} store(s) already set up" if wanted else "no NFS store"
        return outcome(not bad, bad[0].reason if bad else None, message)

    # --- health ---
    async def _health(self, w: _Worker, body: Mapping[str, Any], zone: Mapping[str, Any], seen: Reached, channel: GuestChannel,
                      target: GuestTarget, pushed: bool, asked: str | None = None, force: bool = False
                      ) -> tuple[dict[str, Any] | None, str | None]:
        """The periodic check when due (or just after a push, or now for a new checkRequest token `asked`, or `force`)."""
        policy = _spec(zone).get("health") or {}
        interval = float(policy.get("intervalSeconds", 60))
        if self.clock() < w.next_check and not pushed and not asked and not force:
            return None, None
        w.next_check = self.clock() + interval
        payload: dict[str, Any] = {"timeoutSeconds": self.settings.check_timeout, "copyServer": self.settings.check_copy_server}
        mgmt = (zone.get("spec") or {}).get("management") or {}
        if mgmt.get("host") and not seen.simulated:
            # A simulated guest shares this machine's network: probes that would leave it are not sent to one.
            payload["management"] = {"host": mgmt["host"], "port": int(mgmt.get("port", 8250))}
        report: dict[str, Any] | None = None
        error: tuple[str, str] | None = None
        try:
            result = await self._run(channel, target, "check", payload)
            meta = body["metadata"]
            self.reach.confirm((meta["namespace"], meta["name"]), target.address, target.host_key, target.port, self.clock())
            report = dict(result.data)
            if not result.ok and "checks" not in report:
                error = (result.reason or "CheckFailed", result.message)
            if report.get("staleStores"):
                remount = await self._run(channel, target, "remount", {})
                log.info("guest %s: remounted stale stores (%s)", target.name, "ok" if remount.ok else remount.reason)
        except errors.GuestError as e:
            error = (e.reason, e.message)
        previous = (body.get("status") or {}).get("health") or {}
        health = health_status(previous, report, error, force=bool(asked or force))
        if pushed and not health["healthy"]:
            # Just configured: its services may still be starting, so look again soon rather than an interval later.
            w.next_check = self.clock() + min(interval, SETTLE_RECHECK_SECONDS)
        metrics.record_health_check(body["metadata"]["namespace"], zone["metadata"]["name"], health["healthy"],
                                    (report or {}).get("problems") or [])
        metrics.set_ssvm(body["metadata"]["namespace"], zone["metadata"]["name"], body["metadata"]["name"],
                         healthy=health["healthy"], checked_at=time.time())   # every check, even one that writes nothing
        threshold = int(policy.get("failureThreshold", 3))
        recreate = None
        if health["consecutiveFailures"] >= threshold:
            problems = ", ".join((report or {}).get("problems") or []) or (error[0] if error else "unknown")
            recreate = f"{health['consecutiveFailures']} failed health checks in a row ({problems})"
            health["consecutiveFailures"] = 0   # the new VM starts counting afresh
        problems = list((report or {}).get("problems") or [])
        return {"health": health, "_error": error, "_problems": problems, "_asked": asked}, recreate

    async def _recreate(self, body: Mapping[str, Any], why: str) -> None:
        meta = body["metadata"]
        token = f"unhealthy-{int(time.time())}"
        self.cluster.post_event(body, ev.SSVM_UNHEALTHY, f"{meta['name']}: {why}.", "Warning")
        await self.cluster.request_recreate(meta["namespace"], meta["name"], token)
        self.cluster.post_event(body, ev.SSVM_RECREATED, f"{meta['name']}: VM recreated (request {token}) after {why}.", "Warning")
        self.reach.pop((meta["namespace"], meta["name"]), None)

    async def _blocked(self, w: _Worker, namespace: str, name: str, generation: int | None, e: KeyMaterialError) -> None:
        """Nothing can be pushed without the keys and the copy password: the guest conditions say why."""
        if w.blocked != e.reason:
            w.blocked = e.reason
            log.warning("guest ops %s/%s: nothing pushed: %s: %s", namespace, name, e.reason, e.message)
        await self.cluster.update_ssvm_status(namespace, name, lambda st, _b: self._diff(
            st, {"conditions": blocked_conditions(st.get("conditions") or [], e.reason, e.message, generation)}))

    # --- status ---
    @staticmethod
    def _diff(status: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in wanted.items() if status.get(k) != v}

    async def _write(self, namespace: str, name: str, planned: list[PlannedAction], outcomes: list[ActionOutcome],
                     health: dict[str, Any] | None, nfs_stores: int, peers: int, seen: Reached,
                     extra: Mapping[str, Any] | None = None) -> None:
        copy_port = 443 if any(p.action == "firewall" and p.payloads[0].get("encryptCopy") for p in planned) else 80

        def compute(status: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
            if status.get("state") != "Running":
                return {}
            generation = body["metadata"].get("generation")
            actions = {k: dict(v) for k, v in (status.get("actions") or {}).items() if v}
            done = {o.status_key for o in outcomes}
            for o in outcomes:
                actions[o.status_key] = action_record(actions.get(o.status_key), o)
            for p in planned:
                if p.status_key not in done:
                    pending = pending_record(actions.get(p.status_key), p.desired_hash)
                    if pending is not None:
                        actions[p.status_key] = pending
            conds = guest_conditions(status.get("conditions") or [], actions, nfs_stores=nfs_stores, peers=peers,
                                     copy_port=copy_port, generation=generation)
            wanted: dict[str, Any] = {"actions": actions, "hostKeyFingerprint": seen.host_fingerprint, **(extra or {})}
            if health is not None:
                wanted["health"] = health["health"]
                if health["_asked"]:
                    wanted["observedCheckRequest"] = health["_asked"]
                conds = healthy_condition(conds, health["health"], health["_error"], health["_problems"], generation)
            wanted["conditions"] = conds
            return GuestOps._diff(status, wanted)

        await self.cluster.update_ssvm_status(namespace, name, compute)

    async def _write_stores(self, namespace: str, zone: str, ssvm: str, outcome: ActionOutcome) -> None:
        live = self.cluster.ssvm_names(namespace, zone)
        for result in outcome.stores:
            def compute(status: Mapping[str, Any], body: Mapping[str, Any], result: StoreResult = result) -> dict[str, Any]:
                mounts = store_mounts(status, ssvm, result, live)
                old = next((m for m in status.get("mounts") or [] if m.get("ssvm") == ssvm), None)
                new = next(m for m in mounts if m["ssvm"] == ssvm)
                if same_mount(old, new):
                    new["lastUpdateTime"] = old["lastUpdateTime"]   # an unchanged result is not rewritten
                # set from the status this write is computed on (the last computation is the one written)
                metrics.set_store_mounted(namespace, zone, result.store, sum(1 for m in mounts if m["result"] == "Mounted"))
                return store_status_patch(status, mounts, body["metadata"].get("generation"))
            await self.cluster.update_store_status(namespace, result.store, compute)

    async def prune_store_mounts(self, namespace: str, zone: str, ssvm: str) -> None:
        """A deleted SSVM's entries leave its zone's stores."""
        for store in self.cluster.stores(namespace, zone):
            await self.cluster.update_store_status(namespace, store["metadata"]["name"], lambda st, b: store_status_patch(
                st, store_mounts(st, ssvm, None, None), b["metadata"].get("generation"))
                if any(m.get("ssvm") == ssvm for m in st.get("mounts") or []) else {})


INSTANCE_CHANGED = "InstanceChanged"   # the agent's answer to a push meant for an earlier boot of the VM


def _boot(boot: str | None) -> dict[str, str]:
    return {BOOT_ID: boot} if boot else {}
