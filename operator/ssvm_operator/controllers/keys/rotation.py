"""Rotating the operator's SSH key across running guests, declared in the key Secret.

While the Secret holds `<key>.next`, each SSVM's worker adds the next public key to its guest (logged
in with the current key), verifies a login with the next key, and records in `status.sshKeys` the
fingerprints its guest accepts. Once every SSVM using that Secret accepts the next key, the operator
promotes it in the Secret (the old fingerprint noted in an annotation) and each worker drops the old
key from its guest; the note goes when every guest is clean. Any connection meanwhile tries the key
the guest is known to accept first and falls back to the other one on AuthenticationFailed.
Only fingerprints are ever logged, written to status or put in Events.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ssvm_operator.kube import events as ev
from ssvm_operator.model.conditions import utcnow
from ssvm_operator.ssh import errors
from ssvm_operator.ssh.channel import KEYS_ACTION, ActionResult, GuestChannel, GuestTarget, Timeouts
from ssvm_operator.controllers.keys.secrets import (
    KeyMaterialError,
    KeyStore,
    OperatorKey,
    OperatorKeys,
    operator_keys_of,
    promoted_secret,
    without_retired,
)

log = logging.getLogger(__name__)
ACTION = KEYS_ACTION
EV_STARTED, EV_PROMOTED, EV_ROTATED = ev.SSH_KEY_ROTATION_STARTED, ev.SSH_KEY_PROMOTED, ev.SSH_KEY_ROTATED


class KeyringChannel:
    """A GuestChannel over several operator keys: the one the guest last accepted first, the others on refusal."""

    def __init__(self, channels: list[tuple[str, GuestChannel]], preferred: dict[str, str]) -> None:
        self.channels, self.preferred = channels, preferred

    async def run_action(self, target: GuestTarget, action: str, payload: Mapping[str, Any]) -> ActionResult:
        liked = self.preferred.get(target.name)
        refused: errors.AuthenticationFailed | None = None
        for fp, channel in sorted(self.channels, key=lambda c: c[0] != liked):
            try:
                result = await channel.run_action(target, action, payload)
            except errors.AuthenticationFailed as e:
                refused = e
                continue
            if fp != liked:
                if liked is not None or fp != self.channels[0][0]:
                    log.info("guest %s: logged in with operator key %s", target.name, fp)
                self.preferred[target.name] = fp
            return result
        assert refused is not None
        raise refused


def _keys(answer: Mapping[str, Any] | None) -> set[str] | None:
    return None if answer is None else {str(k) for k in answer.get("keys") or []}


def _uses(keys_of_zone: Callable[[Mapping[str, Any]], tuple[str, str]], zone: Mapping[str, Any] | None,
          keys: OperatorKeys) -> bool:
    return zone is not None and keys_of_zone(zone) == (keys.secret, keys.data_key)


class Logins:
    """Logins to guests with the operator's keys: one channel per key and timeouts, and the key each guest
    last accepted, tried first by every login (the start gate's, the guest worker's, the rotation's)."""

    def __init__(self, factory: Callable[[OperatorKey, Timeouts], GuestChannel]) -> None:
        self.factory = factory
        self.preferred: dict[str, str] = {}            # target name -> fingerprint of the key it last accepted
        self._channels: dict[tuple[str, Timeouts], GuestChannel] = {}

    def channel(self, key: OperatorKey, timeouts: Timeouts) -> GuestChannel:
        cache = (key.version + key.fingerprint, timeouts)
        if cache not in self._channels:
            self._channels[cache] = self.factory(key, timeouts)
        return self._channels[cache]

    def keyring(self, keys: OperatorKeys, timeouts: Timeouts) -> KeyringChannel:
        return KeyringChannel([(k.fingerprint, self.channel(k, timeouts)) for k in keys.ring], self.preferred)


class KeyRotation:
    def __init__(self, cluster: Any, keys: KeyStore, logins: Logins, reached: Mapping[tuple[str, str], Any],
                 wake: Callable[[str, str], None]) -> None:
        self.cluster, self.keys, self.logins, self.reached, self.wake = cluster, keys, logins, reached, wake
        self.channel = logins.channel
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiting: dict[tuple[str, str], tuple[str, ...]] = {}   # what holds each promotion back (logged on change)

    def keyring(self, keys: OperatorKeys, timeouts: Timeouts) -> KeyringChannel:
        return self.logins.keyring(keys, timeouts)

    # --- one SSVM's part, after its guest actions ---
    async def step(self, body: Mapping[str, Any], keys: OperatorKeys, instance_id: str | None, target: GuestTarget,
                   timeouts: Timeouts) -> None:
        if keys.next is None and not keys.retired:
            return
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        record = (body.get("status") or {}).get("sshKeys") or {}
        accepted = set(record.get("accepted") or []) if record.get("instanceId") == instance_id else None
        if keys.next is not None and (accepted is None or keys.next.fingerprint not in accepted):
            listed = _keys(await self._add_next(keys, target, timeouts))
            if listed is not None and keys.next.fingerprint in listed:
                await self._record(ns, name, listed, instance_id)
                self.cluster.post_event(body, EV_STARTED, f"{name}: the guest accepts the next operator SSH key "
                                        f"{keys.next.fingerprint}; the current one {keys.current.fingerprint} stays until "
                                        f"every SSVM using Secret {keys.secret} accepts the next.")
            accepted = listed
        if keys.next is not None and accepted is not None and keys.next.fingerprint in accepted:
            await self._promote_when_ready(ns, keys)
        if keys.retired and (accepted is None or accepted & set(keys.retired)):
            answer = await self._drop_retired(keys, target, timeouts)
            listed = _keys(answer)
            if answer is not None and listed is not None:
                await self._record(ns, name, listed, instance_id)
                if answer.get("removed"):
                    self.cluster.post_event(body, EV_ROTATED, f"{name}: operator SSH key rotated: the guest accepts "
                                            f"{keys.current.fingerprint}; removed {', '.join(keys.retired)}.")
            accepted = listed
        if keys.retired and keys.next is None and accepted is not None and not accepted & set(keys.retired):
            await self._finish_when_clean(ns, keys)

    async def _add_next(self, keys: OperatorKeys, target: GuestTarget, timeouts: Timeouts) -> dict[str, Any] | None:
        assert keys.next is not None
        try:
            added = await self.channel(keys.current, timeouts).run_action(target, ACTION, {"add": [keys.next.public]})
            if not added.ok:
                log.warning("guest %s: adding the next operator key failed: %s", target.name, added.reason)
                return None
        except errors.AuthenticationFailed:
            pass   # the guest no longer takes the current key (a rotation cut short): it may take the next one already
        except errors.GuestError as e:
            log.info("guest %s: next operator key not added yet: %s", target.name, e.reason)
            return None
        return await self._list(self.channel(keys.next, timeouts), target, "verifying the next operator key")

    async def _drop_retired(self, keys: OperatorKeys, target: GuestTarget, timeouts: Timeouts) -> dict[str, Any] | None:
        return await self._list(self.keyring(keys, timeouts), target, "removing retired operator keys",
                                {"remove": list(keys.retired)})

    @staticmethod
    async def _list(channel: GuestChannel, target: GuestTarget, what: str,
                    payload: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Runs authorized-keys (a login with that channel's key); its answer (`keys`: what the guest accepts now)."""
        try:
            result = await channel.run_action(target, ACTION, payload or {})
        except errors.GuestError as e:
            log.info("guest %s: %s: %s", target.name, what, e.reason)
            return None
        if not result.ok:
            log.warning("guest %s: %s failed: %s", target.name, what, result.reason)
            return None
        return dict(result.data)

    async def _record(self, ns: str, name: str, accepted: set[str], instance_id: str | None) -> None:
        def compute(status: Mapping[str, Any], _body: Mapping[str, Any]) -> dict[str, Any]:
            old = status.get("sshKeys") or {}
            if old.get("instanceId") == instance_id and sorted(old.get("accepted") or []) == sorted(accepted):
                return {}
            return {"sshKeys": {"accepted": sorted(accepted), "instanceId": instance_id, "verifiedTime": utcnow()}}
        await self.cluster.update_ssvm_status(ns, name, compute)

    # --- the Secret: promotion and the end of a rotation ---
    async def _users(self, ns: str, keys: OperatorKeys) -> list[Mapping[str, Any]]:
        """Every SSVM of the namespace whose zone logs in with this Secret's key (fresh from the API)."""
        return [s for s in await self.cluster.list_ssvms(ns) if not s["metadata"].get("deletionTimestamp")
                and _uses(self.keys.operator_secret_ref, self.cluster.zone(ns, (s.get("spec") or {}).get("zoneRef", "")), keys)]

    def _verified(self, ssvm: Mapping[str, Any]) -> set[str] | None:
        """The keys this SSVM's current VM instance accepts, when it runs and was verified this process."""
        status = ssvm.get("status") or {}
        seen = self.reached.get((ssvm["metadata"]["namespace"], ssvm["metadata"]["name"]))
        record = status.get("sshKeys") or {}
        if status.get("state") != "Running" or seen is None or record.get("instanceId") != seen.instance_id:
            return None
        return set(record.get("accepted") or [])

    def _note_waiting(self, key: tuple[str, str], waiting: list[str], what: str) -> None:
        if tuple(waiting) != self._waiting.get(key):
            self._waiting[key] = tuple(waiting)
            if waiting:
                log.info("Secret %s/%s: %s waits for %s", key[0], key[1], what, ", ".join(waiting))

    async def _promote_when_ready(self, ns: str, keys: OperatorKeys) -> None:
        assert keys.next is not None
        lock = self._locks.setdefault((ns, keys.secret), asyncio.Lock())
        async with lock:
            users = await self._users(ns, keys)
            waiting = [s["metadata"]["name"] for s in users if keys.next.fingerprint not in (self._verified(s) or ())]
            self._note_waiting((ns, keys.secret), waiting, "promoting the next operator key")
            if waiting:
                return
            secret = await self.keys.read(ns, keys.secret)
            try:
                fresh = operator_keys_of(secret, ns, keys.secret, keys.data_key) if secret else None
            except KeyMaterialError:
                fresh = None
            if (fresh is None or fresh.next is None or fresh.next.fingerprint != keys.next.fingerprint
                    or fresh.current.fingerprint != keys.current.fingerprint):
                return   # the Secret changed under us: the next pass looks again
            if await self.keys.replace(ns, promoted_secret(secret, fresh)) is None:
                return   # another writer won (409): the next pass looks again
            self.keys.invalidate_operator_keys(ns, keys.secret)
            log.info("Secret %s/%s: promoted operator key %s (was %s) after %d SSVM(s) accepted it", ns, keys.secret,
                     keys.next.fingerprint, keys.current.fingerprint, len(users))
            for s in users:
                self.cluster.post_event(s, EV_PROMOTED, f"Operator SSH key {keys.next.fingerprint} is now current in Secret "
                                        f"{keys.secret}; {keys.current.fingerprint} is being removed from the guests.")
                self.wake(ns, s["metadata"]["name"])

    async def _finish_when_clean(self, ns: str, keys: OperatorKeys) -> None:
        lock = self._locks.setdefault((ns, keys.secret), asyncio.Lock())
        async with lock:
            users = await self._users(ns, keys)
            retired = set(keys.retired)
            waiting = [s["metadata"]["name"] for s in users if (v := self._verified(s)) is None or v & retired]
            self._note_waiting((ns, keys.secret), waiting, "removing the retired operator key")
            if waiting:
                return
            secret = await self.keys.read(ns, keys.secret)
            if secret is None:
                return
            if await self.keys.replace(ns, without_retired(secret)) is not None:
                self.keys.invalidate_operator_keys(ns, keys.secret)
                log.info("Secret %s/%s: rotation finished, every guest dropped %s", ns, keys.secret, ", ".join(keys.retired))
