"""One loop per Template: gather what the planner needs (zones, stores, SSVMs, the jobs their agents
report), plan, start and remove jobs over the guest channel, write status and Events. While a download
runs the loop polls every `poll_seconds`; otherwise it sleeps until an event wakes it or the periodic look
at the stores (`verify_seconds`) is due. Deleting a Template removes its files from every store first."""
from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator import metrics
from ssvm_operator.agent.credentials import DEFAULT_USER
from ssvm_operator.agent.links import signed_path as link_path
from ssvm_operator.agent.stores import parse_nfs_url, store_id
from ssvm_operator.api.zone import normalized_site
from ssvm_operator.controllers import ids
from ssvm_operator.controllers.guest.actions import applied_stores
from ssvm_operator.controllers.keys.rotation import Logins
from ssvm_operator.controllers.keys.secrets import KeyMaterialError, KeyStore
from ssvm_operator.controllers.ssvm.start_gate import Reach
from ssvm_operator.controllers.template.plan import Plan, SSVMView, Start, StoreView, TemplateView, holder_of, job_id, plan_template
from ssvm_operator.controllers.template.status import template_status_patch
from ssvm_operator.kube.context import Kube
from ssvm_operator.kube import events as ev
from ssvm_operator.kube.events import EventSpec, ref_of
from ssvm_operator.kube.wakeups import Stopped, Wakeups
from ssvm_operator.model.conditions import set_condition
from ssvm_operator.model.store_urls import duplicate_store_urls
from ssvm_operator.ssh import errors
from ssvm_operator.ssh.channel import GuestTarget, Timeouts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemplateSettings:
    poll_seconds: float = 2.0          # a running download's progress is read this often
    verify_seconds: float = 300.0      # the stores are looked at this often (a removed or damaged image comes back)
    checksum_seconds: float = 86400.0  # every byte of each image is checked against its checksum this often
    link_ttl_seconds: float = 86400.0  # a signed download link works this long; renewed when half of it is left
    timeouts: Timeouts = Timeouts(connect=5.0, banner=10.0, auth=10.0, command=30.0, deadline=40.0)
    verify_timeouts: Timeouts = Timeouts(connect=5.0, banner=10.0, auth=10.0, command=1800.0, deadline=1810.0)   # reads whole images


def ssvm_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the template controller reads of an SSVM (its index entry): state, address, sessions, mounted stores."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    mounted = sorted(applied_stores(((status.get("actions") or {}).get("setupStore"))))
    return {"name": meta.get("name"), "deleting": bool(meta.get("deletionTimestamp")), "state": status.get("state"),
            "publicIp": ((status.get("nics") or {}).get("public") or {}).get("ip"),
            "sessions": int((status.get("health") or {}).get("activeSessions") or 0), "mounted": mounted}


class JobBoard:
    """The jobs of each SSVM, read with one `jobs` call shared by every template's loop asking within `fresh` seconds."""

    def __init__(self, fresh: float) -> None:
        self.fresh = fresh
        self._seen: dict[tuple[str, str], tuple[float, asyncio.Future]] = {}

    async def jobs(self, key: tuple[str, str], read: Callable[[], Any]) -> dict[str, Any] | None:
        at, future = self._seen.get(key, (0.0, None))
        if future is None or (future.done() and time.monotonic() - at > self.fresh):
            future = asyncio.ensure_future(read())
            self._seen[key] = (time.monotonic(), future)
        try:
            return await asyncio.shield(future)
        except (errors.GuestError, KeyMaterialError):
            return None

    def forget(self, key: tuple[str, str]) -> None:
        self._seen.pop(key, None)


class TemplateOps:
    def __init__(self, kube: Kube, indexes: Callable[[str], Any], keys: KeyStore, logins: Logins, reach: Reach,
                 settings: TemplateSettings | None = None) -> None:
        self.kube, self.indexes, self.keys, self.logins, self.reach = kube, indexes, keys, logins, reach
        self.settings = settings or TemplateSettings()
        self.wakeups = Wakeups()
        self.board = JobBoard(self.settings.poll_seconds / 2)
        self._last_look: dict[tuple[str, str], float] = {}
        self._last_verify: dict[tuple[str, str], float] = {}

    # --- what Kubernetes says ---
    def _zone(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return next(iter((self.indexes(ids.ZONES_INDEX) or {}).get((namespace, name), [])), None)

    def _zone_names(self, namespace: str) -> list[str]:
        return sorted(name for ns, name in (self.indexes(ids.ZONES_INDEX) or {}) if ns == namespace)

    def view(self, body: Mapping[str, Any]) -> tuple[TemplateView, list[StoreView], list[SSVMView]]:
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        ns = meta["namespace"]
        existing = self._zone_names(ns)
        named = existing if spec.get("allZones") else list(spec.get("zones") or [])
        zones = tuple(z for z in named if z in existing and not (self._zone(ns, z) or {}).get("metadata", {}).get("deletionTimestamp"))
        token = spec.get("retryRequest")
        t = TemplateView(ns, meta["name"], meta.get("uid", ""), spec, zones, tuple(z for z in named if z not in existing),
                         retry=bool(token and token != status.get("observedRetryRequest")))
        stores: list[StoreView] = []
        for zone in existing:   # every zone's: an entry on a store outside the template's zones is removed from it
            listed = list((self.indexes(ids.STORES_INDEX) or {}).get((ns, zone), []))
            unused = duplicate_store_urls(listed)   # a second store naming an export in use is not mounted: not a target
            for s in listed:
                sspec = s.get("spec") or {}
                writable = (not sspec.get("readOnly") and sspec.get("protocol", "nfs") == "nfs" and not s["metadata"].get("deletionTimestamp")
                            and s["metadata"]["name"] not in unused)
                stores.append(StoreView(s["metadata"]["name"], zone, sspec.get("url", ""), writable))
        ssvms: list[SSVMView] = []
        for zone in existing:
            session_max = int(((self._zone(ns, zone) or {}).get("spec") or {}).get("secondaryStorage", {}).get("sessionMax", 50))
            for e in (self.indexes(ids.TEMPLATE_SSVMS_INDEX) or {}).get((ns, zone), []):
                running = e["state"] == "Running" and not e["deleting"]
                ssvms.append(SSVMView(e["name"], zone, running and (ns, e["name"]) in self.reach, frozenset(e["mounted"]), e["sessions"],
                                      session_max, e["publicIp"], running))
        return t, sorted(stores, key=lambda s: s.name), sorted(ssvms, key=lambda s: s.name)

    # --- the guest channel ---
    async def _run(self, namespace: str, ssvm: SSVMView, action: str, payload: Mapping[str, Any], timeouts: Timeouts | None = None) -> Any:
        zone = self._zone(namespace, ssvm.zone)
        seen = self.reach.get((namespace, ssvm.name))
        if zone is None or seen is None:
            raise errors.GuestError("Unreachable", f"{ssvm.name} is not reached yet")
        channel = self.logins.keyring(await self.keys.operator_keys(zone), timeouts or self.settings.timeouts)
        target = GuestTarget(name=f"{namespace}/{ssvm.name}", address=seen.address, host_key=seen.host_key, port=seen.port, zone=ssvm.zone)
        started = time.monotonic()
        try:
            result = await channel.run_action(target, action, payload)
        except errors.GuestError as e:
            metrics.record_action(action, False, e.reason, time.monotonic() - started, namespace, ssvm.zone)
            raise
        metrics.record_action(action, result.ok, result.reason or "", time.monotonic() - started, namespace, ssvm.zone)
        return result

    async def _jobs(self, namespace: str, ssvm: SSVMView) -> dict[str, Any] | None:
        async def read() -> dict[str, Any]:
            result = await self._run(namespace, ssvm, "jobs", {})
            if not result.ok:
                raise errors.GuestError(result.reason or "Failed", result.message)
            return dict(result.data.get("jobs") or {})
        return await self.board.jobs((namespace, ssvm.name), read)

    async def _listed(self, namespace: str, store: StoreView, holder: SSVMView, t: TemplateView, verify: bool) -> bool | None:
        try:
            result = await self._run(namespace, holder, "template-list", {"storeUrl": store.url, "prefix": t.install_dir, "verify": verify},
                                     self.settings.verify_timeouts if verify else None)
        except (errors.GuestError, KeyMaterialError):
            return None
        if not result.ok:
            return None
        return any(x.get("installDir") == t.install_dir and x.get("whole") for x in result.data.get("templates") or [])

    async def _source(self, t: TemplateView, start: Start, stores: Mapping[str, StoreView],
                      ssvms: Mapping[str, SSVMView], zone: Mapping[str, Any]) -> dict[str, Any]:
        ss = (zone.get("spec") or {}).get("secondaryStorage") or {}
        if start.peer_store is None:
            source = {"url": t.spec["url"], "allowedInternalSites": sorted({normalized_site(s) for s in ss.get("allowedInternalSites") or []})}
            if ss.get("httpProxy"):
                source["proxy"] = ss["httpProxy"]
            return source
        peer_store = stores[start.peer_store]
        if start.peer_ssvm is None:
            return {"store": peer_store.url, "installDir": t.install_dir, "fileName": t.file_name}
        peer = ssvms[start.peer_ssvm]
        peer_zone = self._zone(t.namespace, peer.zone) or {}
        password = (await self.keys.copy_password(peer_zone)).value
        auth = base64.b64encode(f"{DEFAULT_USER}:{password}".encode()).decode()
        host, path = parse_nfs_url(peer_store.url)
        scheme = "https" if ((peer_zone.get("spec") or {}).get("secondaryStorage") or {}).get("encryptCopy") else "http"
        return {"url": f"{scheme}://{peer.public_ip}/{store_id(host, path)}/{t.install_dir}/{t.file_name}", "peer": True,
                "authorizationToken": f"Basic {auth}"}

    async def _start(self, body: Mapping[str, Any], t: TemplateView, start: Start, stores: Mapping[str, StoreView],
                     ssvms: Mapping[str, SSVMView]) -> tuple[str, str] | None:
        ssvm, store = ssvms[start.ssvm], stores[start.store]
        zone = self._zone(t.namespace, ssvm.zone) or {}
        spec, policy = t.spec, t.spec.get("download") or {}
        try:
            payload = {"job": start.job, "request": start.request, "storeUrl": store.url, "installDir": t.install_dir,
                       "fileName": t.file_name, "format": spec.get("format"), "checksum": spec.get("checksum"),
                       "maxBytes": spec["maxSizeGiB"] << 30 if spec.get("maxSizeGiB") else None,
                       "stallSeconds": policy.get("stallTimeoutSeconds", 120), "maxAttempts": policy.get("maxAttempts", 3),
                       "retryBaseSeconds": policy.get("retryBaseSeconds", 10),
                       "properties": {"uniquename": f"{t.namespace}/{t.name}", "id": t.uid, "url": spec.get("url", "")},
                       "source": await self._source(t, start, stores, ssvms, zone)}
            result = await self._run(t.namespace, ssvm, "template-download", payload)
        except KeyMaterialError as e:
            return e.reason, e.message
        except errors.GuestError as e:
            return e.reason, e.message
        self.board.forget((t.namespace, ssvm.name))
        return None if result.ok else (result.reason or "Failed", result.message)

    # --- the loop ---
    async def run(self, namespace: str, name: str, stopped: Stopped, body: Callable[[], Mapping[str, Any]]) -> None:
        key = (namespace, name)
        while not stopped:
            self.wakeups.clear(key)
            try:
                delay = await self.step(body())
            except Exception as e:  # the loop must outlive any one failure; the type only, never a payload
                log.warning("template %s/%s: %s", namespace, name, type(e).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
                delay = 10.0
            await self.wakeups.sleep(key, delay, stopped)
        self.wakeups.forget(key)
        self._last_look.pop(key, None)
        self._last_verify.pop(key, None)

    async def step(self, body: Mapping[str, Any]) -> float:
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return 3600.0   # the finalizer handles it
        t, stores, ssvms = self.view(body)
        by_ssvm = {s.name: s for s in ssvms}
        entries = list((body.get("status") or {}).get("stores") or [])
        jobs: dict[str, Any] = {}
        for e in (e for e in entries if e.get("state") == "Downloading"):
            doer = by_ssvm.get(e.get("ssvm") or "")
            if doer is None or not doer.up:
                jobs[e["store"]] = None   # its SSVM is gone or down: the download goes elsewhere
            elif doer.reachable:   # a Running SSVM not reached yet (this process just started) is asked later
                report = await self._jobs(t.namespace, doer)
                if report is not None:
                    jobs[e["store"]] = report.get(job_id(t.uid, e["store"]))
        listed = await self._look(t, stores, ssvms, entries)
        now = datetime.datetime.now(datetime.timezone.utc)
        plan = plan_template(t, stores, ssvms, entries, jobs, listed, now)
        store_map = {s.name: s for s in stores}
        for start in plan.starts:
            failed = await self._start(body, t, start, store_map, by_ssvm)
            if failed is not None:
                self._failed_start(plan, start, failed, now)
        for remove in plan.removes:
            why = await self._remove(t, store_map[remove.store], by_ssvm[remove.ssvm])
            if why is None:
                plan.entries = [e for e in plan.entries if e["store"] != remove.store]
                plan.events.append((ev.TEMPLATE_REMOVED, f"{t.name} removed from {remove.store}.", "Normal"))
        links = await self._links(body, t, plan.entries, store_map, ssvms, now)
        await self._write(body, t, plan, links)
        self._post(body, plan)
        metrics.set_template(t.namespace, t.name, plan.entries)
        if any(e["state"] == "Downloading" for e in plan.entries):
            return self.settings.poll_seconds
        renew = [(_when(link["expires"]) - now).total_seconds() - self.settings.link_ttl_seconds / 2 for link in links or []]
        return max(0.5, min([self._next_due(plan, now), *renew]))

    async def _links(self, body: Mapping[str, Any], t: TemplateView, entries: list[dict[str, Any]], stores: Mapping[str, StoreView],
                     ssvms: list[SSVMView], now: datetime.datetime) -> list[dict[str, Any]] | None:
        """One signed link per zone of an extractable template, on a Ready store an SSVM serves; kept until half its life is over."""
        if not t.spec.get("extractable"):
            return []
        try:
            key = (await self.keys.link_secret(t.namespace)).value
        except KeyMaterialError:
            return None   # links stay as they are; the guest conditions say what is wrong with the Secret
        kept = {link["store"]: link for link in (body.get("status") or {}).get("downloadLinks") or []}
        links = []
        for zone in t.zones:
            secure = ((self._zone(t.namespace, zone) or {}).get("spec") or {}).get("secondaryStorage", {}).get("encryptCopy", False)
            for e in (e for e in entries if e["zone"] == zone and e["state"] == "Ready" and e["store"] in stores):
                holder = holder_of([s for s in ssvms if s.public_ip], e["store"], None)
                if holder is None:
                    continue
                base = f"{'https' if secure else 'http'}://{holder.public_ip}/"
                old = kept.get(e["store"])
                if old and old["url"].startswith(base) and (_when(old["expires"]) - now).total_seconds() > self.settings.link_ttl_seconds / 2:
                    links.append(old)
                else:
                    expires = int(now.timestamp() + self.settings.link_ttl_seconds)
                    host, path = parse_nfs_url(stores[e["store"]].url)
                    signed = link_path(key, f"{store_id(host, path)}/{t.install_dir}/{t.file_name}", expires)
                    links.append({"url": base + signed.lstrip("/"), "store": e["store"],
                                  "expires": datetime.datetime.fromtimestamp(expires, datetime.timezone.utc).isoformat().replace("+00:00", "Z")})
                break
        return links

    async def _remove(self, t: TemplateView, store: StoreView, holder: SSVMView) -> str | None:
        """Stops the store's job and removes the template's files from it; None when done, else why not."""
        try:
            result = await self._run(t.namespace, holder, "template-remove", {"job": job_id(t.uid, store.name), "storeUrl": store.url,
                                                                              "installDir": t.install_dir})
        except (errors.GuestError, KeyMaterialError) as e:
            return f"{e.reason}: {e.message}"
        return None if result.ok else f"{result.reason}: {result.message}"

    async def _look(self, t: TemplateView, stores: list[StoreView], ssvms: list[SSVMView], entries: list[Mapping[str, Any]]) -> dict[str, bool]:
        """Every `verify_seconds`, whether each Ready store still holds the whole image."""
        key = (t.namespace, t.name)
        if time.monotonic() - self._last_look.get(key, 0.0) < self.settings.verify_seconds:
            return {}
        self._last_look[key] = time.monotonic()
        # the first full read comes checksum_seconds after this process first looked, not at every start
        verify = time.monotonic() - self._last_verify.setdefault(key, time.monotonic()) >= self.settings.checksum_seconds
        if verify:
            self._last_verify[key] = time.monotonic()
        found: dict[str, bool] = {}
        by_name = {s.name: s for s in stores}
        for e in entries:
            store = by_name.get(e["store"])
            holder = next((s for s in ssvms if s.reachable and store is not None and store.name in s.mounted), None)
            if e.get("state") == "Ready" and store is not None and holder is not None:
                whole = await self._listed(t.namespace, store, holder, t, verify)
                if whole is not None:
                    found[store.name] = whole
        return found

    def _failed_start(self, plan: Plan, start: Start, failed: tuple[str, str], now: datetime.datetime) -> None:
        for i, e in enumerate(plan.entries):
            if e["store"] == start.store:
                plan.entries[i] = {**e, "state": "Pending", "reason": failed[0], "message": f"starting on {start.ssvm} failed: {failed[1]}",
                                   "retryTime": (now + datetime.timedelta(seconds=10)).replace(microsecond=0).isoformat().replace("+00:00", "Z")}

    def _next_due(self, plan: Plan, now: datetime.datetime) -> float:
        waits = [self.settings.verify_seconds]
        for e in plan.entries:
            if e.get("retryTime"):
                when = datetime.datetime.fromisoformat(e["retryTime"].replace("Z", "+00:00"))
                waits.append(max(0.5, (when - now).total_seconds()))
            elif e["state"] in ("Pending", "Removing"):
                waits.append(30.0)   # an event (an SSVM reached, a store mounted) usually wakes it sooner
        return min(waits)

    async def _write(self, body: Mapping[str, Any], t: TemplateView, plan: Plan, links: list[dict[str, Any]] | None) -> None:
        token = (body.get("spec") or {}).get("retryRequest") if t.retry else None
        entries = plan.entries

        def compute(status: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
            return template_status_patch(status, t, entries, current["metadata"].get("generation"), links, retry_token=token)

        await self.kube.status.write(c.TEMPLATE_PLURAL, body, compute)

    async def finalize(self, body: Mapping[str, Any]) -> str | None:
        """Removes the template from every store it was put on; None when done, else what holds the deletion."""
        t, stores, ssvms = self.view(body)
        by_name = {s.name: s for s in stores}
        blocked = []
        for e in (body.get("status") or {}).get("stores") or []:
            store = by_name.get(e["store"])
            if store is None:
                continue   # the store is gone, and the files with it
            holder = holder_of(ssvms, store.name, e.get("ssvm"))
            why = f"no running SSVM has {store.name} mounted" if holder is None else await self._remove(t, store, holder)
            if why is not None:
                blocked.append(f"{store.name}: {why}")
        if blocked:
            message = "deletion waits until the files are removed: " + "; ".join(blocked)

            def compute(status: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
                conds = set_condition(status.get("conditions") or [], "Ready", "False", "RemovalBlocked", message[:4000],
                                      current["metadata"].get("generation"))
                return {"conditions": conds} if conds != status.get("conditions") else {}
            await self.kube.status.write(c.TEMPLATE_PLURAL, body, compute, deleting=True)
            return message
        self.kube.events.post([EventSpec(ev.TEMPLATE_REMOVED, f"{t.name} removed from every store.", "Normal")],
                              ref_of(body, c.TEMPLATE_KIND), None)
        metrics.set_template(t.namespace, t.name, None)
        return None

    def _post(self, body: Mapping[str, Any], plan: Plan) -> None:
        if plan.events:
            self.kube.events.post([EventSpec(reason, message, type_) for reason, message, type_ in plan.events],
                                  ref_of(body, c.TEMPLATE_KIND), None)


def _when(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
