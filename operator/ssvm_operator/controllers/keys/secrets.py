"""Key material in Secrets: the operator's SSH key pair, one pinned host key per SSVM, the copy password.

A host key is generated once into a Secret owned by its SSVM and never regenerated while that Secret
exists, so the pin stays stable across VM recreation and operator restarts. Values never leave this
module except into a VM request, a channel or a payload (all of which redact them).
"""
from __future__ import annotations

import asyncio
import base64
import logging
import secrets as pysecrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ssvm_operator.constants import SSH_PORT
from ssvm_operator.kube.client import ApiError
from ssvm_operator.ssh.keys import fingerprint, generate_keypair, load_private_key, public_line

log = logging.getLogger(__name__)
T = TypeVar("T")

OPERATOR_KEY_SECRET = "ssvm-operator-ssh"   # operator-wide key, one per namespace, when the zone names none
PRIVATE, PUBLIC = "ssh-privatekey", "ssh-publickey"   # kubernetes.io/ssh-auth key names
PASSWORD = "password"
NEXT_SUFFIX = ".next"                       # `<key>.next` in the same Secret: the key to rotate to
RETIRED_ANNOTATION = "ssvm.io/retired-ssh-keys"   # fingerprints the operator still has to drop from guests


class KeyMaterialError(Exception):
    """Key material is missing or unreadable; `reason` suits a condition (its message never quotes a value)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class HostKey:
    public: str
    private: str = field(repr=False)
    fingerprint: str = ""


@dataclass(frozen=True)
class OperatorKey:
    public: str
    private: str = field(repr=False)
    fingerprint: str = ""
    version: str = ""         # Secret name/resourceVersion: a changed key gets a new channel


@dataclass(frozen=True)
class OperatorKeys:
    """The operator key Secret as rotation sees it: the current key, the next one (if any), retired fingerprints."""

    current: OperatorKey
    next: OperatorKey | None = None
    retired: tuple[str, ...] = ()
    namespace: str = ""
    secret: str = ""          # the Secret's name
    data_key: str = PRIVATE   # the key of the current private key in it
    next_error: str | None = None   # why a `.next` value was ignored (never its content)

    @property
    def ring(self) -> tuple[OperatorKey, ...]:
        return (self.current,) if self.next is None else (self.current, self.next)


@dataclass(frozen=True)
class CopyPassword:
    value: str = field(repr=False)
    version: str = ""         # the Secret's resourceVersion: enters the action hash instead of the value


LINK_SECRET, LINK_KEY = "ssvm-template-links", "key"   # the namespace's key for signed template links


class SecretsApi(Protocol):
    """Calls on core/v1 Secrets (the operator's KubeClient); None for a missing one, or for a create/replace
    that lost to another writer; any other failure raises `ApiError`."""

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None: ...

    async def replace_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None: ...


COPY_PASSWORD_MAX = 256   # characters; it ends up in an htpasswd-style file and Basic credentials


def secret_value(secret: Mapping[str, Any], key: str, invalid_reason: str = "SecretValueInvalid") -> str | None:
    """A key of a Secret as text, from `data` (base64) or `stringData` (emulators may keep it); a value that is
    not UTF-8 text raises `KeyMaterialError(invalid_reason)` without quoting it."""
    data = secret.get("data") or {}
    if key in data and data[key] is not None:
        try:
            return base64.b64decode(data[key]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            meta = secret.get("metadata") or {}
            raise KeyMaterialError(invalid_reason, f"Secret {meta.get('namespace', '')}/{meta.get('name', '')} key {key} "
                                                   "is not UTF-8 text") from None
    value = (secret.get("stringData") or {}).get(key)
    return value if isinstance(value, str) else None


def check_copy_password(value: str | None, where: str) -> str:
    """The copy password if usable: present, printable ASCII without spaces, at most COPY_PASSWORD_MAX characters."""
    if not value:
        raise KeyMaterialError("CopyPasswordMissing", f"{where} is missing or empty")
    if len(value) > COPY_PASSWORD_MAX:
        raise KeyMaterialError("CopyPasswordInvalid", f"{where} is longer than {COPY_PASSWORD_MAX} characters")
    if not all(33 <= ord(ch) < 127 for ch in value):
        raise KeyMaterialError("CopyPasswordInvalid", f"{where} must be printable ASCII without spaces or line breaks")
    return value


def _owner(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {"apiVersion": body.get("apiVersion", "ssvm.io/v1alpha1"), "kind": body.get("kind", "SecondaryStorageVM"),
            "name": meta["name"], "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def _secret(namespace: str, name: str, values: Mapping[str, str], *, owner: Mapping[str, Any] | None = None,
            type_: str = "Opaque", labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace,
                            "labels": {"app.kubernetes.io/managed-by": "ssvm-operator", **(labels or {})}}
    if owner is not None:
        meta["ownerReferences"] = [_owner(owner)]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": type_,
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def host_key_secret_name(ssvm_name: str) -> str:
    return f"{ssvm_name}-ssh-hostkey"


def copy_password_secret_name(zone_name: str) -> str:
    return f"{zone_name}-ssvm-copy"


def _operator_key(secret: Mapping[str, Any], name: str, key: str, value: str, ns: str) -> OperatorKey:
    try:
        pkey = load_private_key(value)
    except Exception:  # noqa: BLE001 - InvalidKey and friends: never quote the content
        raise KeyMaterialError("SSHKeyInvalid", f"Secret {ns}/{name} key {key} is not an OpenSSH/PEM private key") from None
    rv = (secret.get("metadata") or {}).get("resourceVersion", "")
    return OperatorKey(f"{public_line(pkey)} ssvm-operator", value, fingerprint(pkey), f"{name}/{rv}")


def operator_keys_of(secret: Mapping[str, Any], ns: str, name: str, key: str) -> OperatorKeys:
    """Current key (required), next key (`<key>.next`, optional) and retired fingerprints of a key Secret."""
    private = secret_value(secret, key, "SSHKeyInvalid")
    if not private:
        raise KeyMaterialError("SSHKeyMissing", f"Secret {ns}/{name} has no key {key}")
    current = _operator_key(secret, name, key, private, ns)
    nxt, error = None, None
    try:
        value = secret_value(secret, key + NEXT_SUFFIX, "SSHKeyInvalid")
    except KeyMaterialError as e:
        value, error = None, e.message   # a bad next key must not take the current one down with it
    if value and value.strip():
        try:
            nxt = _operator_key(secret, name, key + NEXT_SUFFIX, value, ns)
        except KeyMaterialError as e:
            error = e.message   # a bad next key must not take the current one down with it
        if nxt is not None and nxt.fingerprint == current.fingerprint:
            nxt = None          # already promoted (or set to the same key): nothing to rotate
    notes = ((secret.get("metadata") or {}).get("annotations") or {}).get(RETIRED_ANNOTATION, "")
    retired = tuple(sorted({f.strip() for f in notes.split(",") if f.strip().startswith("SHA256:")}
                           - {current.fingerprint} - ({nxt.fingerprint} if nxt else set())))
    return OperatorKeys(current, nxt, retired, ns, name, key, error)


def promoted_secret(secret: Mapping[str, Any], keys: OperatorKeys) -> dict[str, Any]:
    """The key Secret after promotion: `.next` becomes the key, the old fingerprint is noted as retired."""
    assert keys.next is not None
    body = {k: v for k, v in secret.items() if k != "stringData"}
    meta = dict(body.get("metadata") or {})
    data = {k: v for k, v in (secret.get("data") or {}).items() if v is not None}
    for k, v in (secret.get("stringData") or {}).items():   # emulators may keep stringData: fold it into data
        data.setdefault(k, base64.b64encode(v.encode()).decode())
    data[keys.data_key] = base64.b64encode(keys.next.private.encode()).decode()
    data.pop(keys.data_key + NEXT_SUFFIX, None)
    if keys.data_key == PRIVATE and PUBLIC in data:
        data[PUBLIC] = base64.b64encode((keys.next.public + "\n").encode()).decode()
    retired = sorted(set(keys.retired) | {keys.current.fingerprint})
    meta["annotations"] = {**(meta.get("annotations") or {}), RETIRED_ANNOTATION: ",".join(retired)}
    body["metadata"], body["data"] = meta, data
    return body


def without_retired(secret: Mapping[str, Any]) -> dict[str, Any]:
    """The key Secret with the retired-keys note gone (every guest dropped them)."""
    body = {k: v for k, v in secret.items() if k != "stringData"}
    meta = dict(body.get("metadata") or {})
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k != RETIRED_ANNOTATION}
    data = dict(secret.get("data") or {})
    for k, v in (secret.get("stringData") or {}).items():
        data.setdefault(k, base64.b64encode(v.encode()).decode())
    body["metadata"], body["data"] = meta, data
    return body


def external_host(zone: Mapping[str, Any], host_name: str | None) -> tuple[HostKey, int]:
    """The pinned key and SSH port of the external host serving an SSVM, from the zone's host list (kept
    there while a zone moves away from the external backend)."""
    ss = (zone.get("spec") or {}).get("secondaryStorage") or {}
    hosts = ((ss.get("template") or {}).get("external") or {}).get("hosts") or []
    host = next((h for h in hosts if h.get("name") == host_name), None)
    if host is None:
        raise KeyMaterialError("ExternalHostNotListed", f"Host {host_name} is not in the zone's external hosts.")
    try:
        return HostKey(host["hostKey"].strip(), "", fingerprint(host["hostKey"].strip())), int(host.get("port", SSH_PORT))
    except Exception:  # noqa: BLE001 - an unreadable key is a condition, never quoted
        raise KeyMaterialError("HostKeyInvalid", f"The hostKey of external host {host.get('name')} is not a readable public key.") from None


class KeyStore:
    """Reads (and creates once) the key Secrets; caches host keys for good and the rest for `ttl` seconds."""

    def __init__(self, api: SecretsApi, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.api, self.ttl, self.clock = api, ttl, clock
        self._host: dict[tuple[str, str, str], HostKey] = {}
        self._cached: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}

    async def _once(self, key: tuple[str, ...], make: Callable[[], Any]) -> Any:
        """`make()` at most once per key at a time, its answer reused for `ttl` seconds."""
        hit = self._cached.get(key)
        if hit and self.clock() - hit[0] < self.ttl:
            return hit[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._cached.get(key)
            if hit and self.clock() - hit[0] < self.ttl:
                return hit[1]
            value = await make()
            self._cached[key] = (self.clock(), value)
            return value

    async def _secrets(self, verb: str, namespace: str, arg: Any) -> dict[str, Any] | None:
        """`read`, `create` or `replace` a Secret; an API failure is a key-material reason, never a crash."""
        try:
            return await getattr(self.api, f"{verb}_secret")(namespace, arg)
        except ApiError as e:
            name = arg["metadata"]["name"] if isinstance(arg, Mapping) else arg
            raise KeyMaterialError("SecretUnavailable", f"{verb} Secret {namespace}/{name}: {e.status} {e.reason}") from None

    async def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._secrets("read", namespace, name)

    async def replace(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self._secrets("replace", namespace, body)

    async def _referenced_or_made(self, namespace: str, name: str, referenced: bool, missing_reason: str, field: str,
                                  build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A Secret the user names (it must exist), or the one the operator makes with `build` when absent."""
        if not referenced:
            return await self._read_or_create(namespace, name, build)
        secret = await self.read(namespace, name)
        if secret is None:
            raise KeyMaterialError(missing_reason, f"Secret {namespace}/{name} ({field}) does not exist")
        return secret

    async def _read_or_create(self, namespace: str, name: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        found = await self.read(namespace, name)
        if found is not None:
            return found
        created = await self._secrets("create", namespace, build())
        if created:
            log.info("created Secret %s/%s", namespace, name)
            return created
        found = await self.read(namespace, name)   # another writer won the create: use theirs
        if found is None:
            raise KeyMaterialError("SecretUnavailable", f"Secret {namespace}/{name} could not be created or read")
        return found

    # --- per SSVM host key ---
    async def host_key(self, ssvm: Mapping[str, Any], create: bool = True) -> HostKey:
        meta = ssvm["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
        cached = self._host.get((ns, name, uid))
        if cached is not None:
            return cached
        secret_name = host_key_secret_name(name)

        def build() -> dict[str, Any]:
            pair = generate_keypair(f"ssvm-host-{name}")
            return _secret(ns, secret_name, {PRIVATE: pair.private_openssh, PUBLIC: pair.public_openssh}, owner=ssvm,
                           labels={"ssvm.io/ssvm": name})

        secret = await (self._read_or_create(ns, secret_name, build) if create else self.read(ns, secret_name))
        if secret is None:
            raise KeyMaterialError("HostKeyMissing", f"Secret {ns}/{secret_name} with the pinned host key does not exist")
        owners = (secret.get("metadata") or {}).get("ownerReferences") or []
        if uid and owners and not any(o.get("uid") == uid for o in owners):
            # A Secret left by an earlier SSVM of the same name: GC will take it; its key must not be pinned.
            raise KeyMaterialError("HostKeyStale", f"Secret {ns}/{secret_name} belongs to an earlier SSVM {name}; waiting for its removal")
        private, public = secret_value(secret, PRIVATE, "HostKeyInvalid"), secret_value(secret, PUBLIC, "HostKeyInvalid")
        if not private or not public:
            raise KeyMaterialError("HostKeyInvalid", f"Secret {ns}/{secret_name} lacks {PRIVATE} or {PUBLIC}")
        try:
            key = HostKey(public.strip(), private, fingerprint(public.strip()))
        except Exception:  # noqa: BLE001 - an unreadable key is a reason, never quoted
            raise KeyMaterialError("HostKeyInvalid", f"Secret {ns}/{secret_name} key {PUBLIC} is not a readable public key") from None
        self._host[(ns, name, uid)] = key
        return key

    def cached_host_key(self, ssvm: Mapping[str, Any]) -> HostKey | None:
        """The SSVM's pinned host key if this process has read it (no API call)."""
        meta = ssvm["metadata"]
        return self._host.get((meta["namespace"], meta["name"], meta.get("uid", "")))

    def forget_host(self, namespace: str, name: str) -> None:
        for key in [k for k in self._host if k[:2] == (namespace, name)]:
            del self._host[key]

    # --- the operator's key (and the next one while it rotates) ---
    @staticmethod
    def operator_secret_ref(zone: Mapping[str, Any]) -> tuple[str, str]:
        ref = ((zone.get("spec") or {}).get("secondaryStorage") or {}).get("sshKeySecretRef")
        return (ref["name"], ref["key"]) if ref else (OPERATOR_KEY_SECRET, PRIVATE)

    async def operator_key(self, zone: Mapping[str, Any]) -> OperatorKey:
        return (await self.operator_keys(zone)).current

    async def operator_keys(self, zone: Mapping[str, Any]) -> OperatorKeys:
        ns = zone["metadata"]["namespace"]
        ref = ((zone.get("spec") or {}).get("secondaryStorage") or {}).get("sshKeySecretRef")
        name, key = self.operator_secret_ref(zone)

        def build() -> dict[str, Any]:
            pair = generate_keypair("ssvm-operator")
            return _secret(ns, name, {PRIVATE: pair.private_openssh, PUBLIC: pair.public_openssh}, type_="kubernetes.io/ssh-auth")

        async def make() -> OperatorKeys:
            secret = await self._referenced_or_made(ns, name, bool(ref), "SSHKeySecretNotFound", "sshKeySecretRef", build)
            return operator_keys_of(secret, ns, name, key)

        return await self._once(("op", ns, name, key), make)

    def invalidate_operator_keys(self, namespace: str, name: str) -> None:
        for k in [k for k in self._cached if k[:3] == ("op", namespace, name)]:
            del self._cached[k]

    # --- the copy password ---
    async def copy_password(self, zone: Mapping[str, Any]) -> CopyPassword:
        meta = zone["metadata"]
        ns = meta["namespace"]
        ref = ((zone.get("spec") or {}).get("secondaryStorage") or {}).get("copyPasswordSecretRef")
        name, key = (ref["name"], ref["key"]) if ref else (copy_password_secret_name(meta["name"]), PASSWORD)

        zone_body = {"apiVersion": "ssvm.io/v1alpha1", "kind": "Zone", "metadata": meta}

        async def make() -> CopyPassword:
            secret = await self._referenced_or_made(ns, name, bool(ref), "CopyPasswordSecretNotFound", "copyPasswordSecretRef",
                                                    lambda: _secret(ns, name, {PASSWORD: pysecrets.token_urlsafe(24)},
                                                                    owner=zone_body, labels={"ssvm.io/zone": meta["name"]}))
            where = f"Secret {ns}/{name} key {key}"
            value = check_copy_password(secret_value(secret, key, "CopyPasswordInvalid"), where)
            return CopyPassword(value, f"{name}/{(secret.get('metadata') or {}).get('resourceVersion', '')}")

        return await self._once(("copy", ns, name, key), make)

    # --- the key of signed download links (one per namespace: any SSVM of it checks any link) ---
    async def link_secret(self, namespace: str) -> CopyPassword:
        async def make() -> CopyPassword:
            secret = await self._read_or_create(namespace, LINK_SECRET,
                                                lambda: _secret(namespace, LINK_SECRET, {LINK_KEY: pysecrets.token_urlsafe(32)}))
            value = secret_value(secret, LINK_KEY, "LinkSecretInvalid")
            if not value or len(value) < 16:
                raise KeyMaterialError("LinkSecretInvalid", f"Secret {namespace}/{LINK_SECRET} key {LINK_KEY} must hold at least 16 characters")
            return CopyPassword(value, f"{LINK_SECRET}/{(secret.get('metadata') or {}).get('resourceVersion', '')}")

        return await self._once(("link", namespace, LINK_SECRET, LINK_KEY), make)
