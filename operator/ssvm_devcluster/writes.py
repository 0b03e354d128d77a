"""Create, update, patch and delete with the semantics of kube-apiserver's generic registry:
preconditions and conflicts, uid/generation/timestamps, the status subresource, finalizers,
CRD schemas (defaulting, pruning, validation), and CRDs registering their resources.
"""
from __future__ import annotations

import copy
import json
import re
import secrets
from collections.abc import Callable
from typing import Any

import yaml

from ssvm_operator.admission import schema
from ssvm_devcluster import errors, patching
from ssvm_devcluster.registry import CRD_KEY, NAMESPACE_KEY, Registry, ResourceType, from_crd
from ssvm_devcluster.store import Store, now_iso

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_PRESERVED_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "name", "namespace")


class Writer:
    def __init__(self, store: Store, registry: Registry, on_delete: Callable[[ResourceType, dict[str, Any]], None]):
        self.store = store
        self.registry = registry
        self.on_delete = on_delete  # told of every removed object and every deletion started (for GC)

    # --- admission: schema defaulting/pruning/validation and metadata checks ---
    def _admit(self, rt: ResourceType, version: str, obj: dict[str, Any], old: dict[str, Any] | None,
               params: dict[str, str], warnings: list[str], status_only: bool = False) -> dict[str, Any]:
        name = obj.get("metadata", {}).get("name", "")
        meta_causes = []
        pattern = _DNS_LABEL if rt.key == NAMESPACE_KEY else _DNS_SUBDOMAIN
        if rt.kind != "Event" and (not pattern.match(name) or len(name) > 253):
            meta_causes.append({"reason": "FieldValueInvalid", "field": "metadata.name", "message":
                                f'Invalid value: "{name}": a lowercase RFC 1123 '
                                f'{"label" if pattern is _DNS_LABEL else "subdomain"} must consist of lower case '
                                f"alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"})
        if meta_causes:
            raise errors.invalid(rt.kind, rt.group, name, meta_causes)
        body_schema = rt.schemas.get(version)
        if not body_schema:
            return obj
        unknown: list[str] = []
        obj = schema.default_and_prune(obj, body_schema, "", unknown, root=True)
        mode = params.get("fieldValidation", "Warn")
        if unknown and mode == "Strict":
            listed = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise errors.bad_request(f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: '
                                     f"strict decoding error: {listed}")
        if unknown and mode == "Warn":
            warnings.extend(f'unknown field "{u}"' for u in unknown)
        old_for_rules = old if old is not None else schema.NO_OLD_OBJECT
        if status_only and old is not None:
            causes = schema.validate_status(obj, body_schema, old)
        else:
            causes = schema.validate(obj, body_schema, "", old=old_for_rules, root=True)
        if causes:
            raise errors.invalid(rt.kind, rt.group, name, causes)
        return obj

    def _check_type(self, rt: ResourceType, obj: Any) -> None:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request is not a JSON object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if rt.crd_name and not kind:   # custom resources decode as unstructured objects: the kind is required
            raise errors.bad_request(f"the object provided is unrecognized (must be of type {rt.kind}): Object 'Kind' is missing "
                                     f"in '{json.dumps(obj, separators=(',', ':'))}'")
        if rt.crd_name and not api_version:
            raise errors.bad_request(f"the API version in the data () does not match the expected API version "
                                     f"({rt.api_version(rt.versions[0])})")
        if kind and kind != rt.kind:
            raise errors.bad_request(f"the kind of the object ({kind}) does not match the kind of the URL ({rt.kind})")
        if api_version and api_version not in [rt.api_version(v) for v in rt.versions]:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected API version")

    def _namespace_ok(self, rt: ResourceType, namespace: str | None) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get(NAMESPACE_KEY, None, namespace or "")
        if ns is None:
            raise errors.not_found("namespaces", "", namespace or "")
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(403, "Forbidden", f"{rt.plural} is forbidden: unable to create new content in "
                                  f"namespace {namespace} because it is being terminated", {"kind": rt.plural})

    # --- create ---
    def create(self, rt: ResourceType, version: str, namespace: str | None, body: Any, params: dict[str, str],
               warnings: list[str]) -> dict[str, Any]:
        self._check_type(rt, body)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(rt.kind, rt.group, "", [{"reason": "FieldValueRequired", "field": "metadata.name",
                                                              "message": "Required value: name or generateName is required"}])
            meta["name"] = meta["generateName"] + "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        obj["apiVersion"], obj["kind"] = rt.api_version(rt.versions[0]), rt.kind
        if meta.get("resourceVersion"):   # kube-apiserver's storage refuses it, as an internal error
            raise errors.ApiError(500, "", "resourceVersion should not be set on objects to be created")
        for field in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp", "generation", "managedFields"):
            meta.pop(field, None)
        if "status" in rt.subresources and rt.key != NAMESPACE_KEY:
            obj.pop("status", None)  # the main endpoint ignores status, also on create
        self._namespace_ok(rt, meta.get("namespace"))
        if self.store.get(rt.key, meta.get("namespace"), meta["name"]) is not None:
            raise errors.already_exists(rt.plural, rt.group, meta["name"])
        obj = self._admit(rt, version, obj, None, params, warnings)
        if rt.key == CRD_KEY:
            obj = self._crd_admit(obj)
            obj["status"] = _crd_pending_status(obj)
        if rt.key == NAMESPACE_KEY:
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        if params.get("dryRun"):
            return obj
        stored = self.store.insert(rt.key, obj, generation=rt.has_spec)
        if rt.key == CRD_KEY:
            # As kube-apiserver: the created CRD has no conditions yet; its names are accepted and it is
            # Established by a second write a moment later (a MODIFIED event), then its paths are served.
            established = copy.deepcopy(stored)
            established["status"] = _crd_established_status(stored, None)
            kind = from_crd(self.store.replace(rt.key, stored, established))
            self.registry.add(kind)
            self.store.compacted[kind.key] = self.store.rv   # a kind's watch history starts when it is served
        return stored

    # --- update and patch share `_replace` ---
    def update(self, rt: ResourceType, version: str, namespace: str | None, name: str, body: Any, sub: str,
               params: dict[str, str], warnings: list[str]) -> dict[str, Any]:
        self._check_type(rt, body)
        old = self._existing(rt, namespace, name)
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        rv = meta.get("resourceVersion")
        if not rv and rt.schemas:
            raise errors.invalid(rt.kind, rt.group, name, [{"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                                                            "message": "Invalid value: 0x0: must be specified for an update"}])
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.stale(rt.plural, rt.group, name)
        return self._replace(rt, version, old, copy.deepcopy(body), sub, params, warnings)

    def patch(self, rt: ResourceType, version: str, namespace: str | None, name: str, raw: bytes, content_type: str,
              sub: str, params: dict[str, str], warnings: list[str]) -> tuple[int, dict[str, Any]]:
        ctype = content_type.split(";")[0].strip()
        old = self.store.get(rt.key, namespace, name)
        try:
            body = yaml.safe_load(raw) if ctype in (patching.APPLY,) else __import__("json").loads(raw or b"null")
        except Exception as e:  # noqa: BLE001 - any decoding failure is the client's
            raise errors.bad_request(f"error decoding patch: {e}")
        if ctype == patching.APPLY:
            if old is None and not sub:
                body = {**(body or {}), "metadata": {**((body or {}).get("metadata") or {}), "name": name}}
                return 201, self.create(rt, version, namespace, body, params, warnings)
            old = self._existing(rt, namespace, name)
            keys = patching.list_map_keys(rt.schemas.get(version))
            patched = patching.strategic_merge(old, body, keys)
        else:
            old = self._existing(rt, namespace, name)
            if ctype == patching.MERGE:
                patched = patching.merge_patch(old, body)
            elif ctype == patching.JSON:
                patched = patching.json_patch(old, body)
            elif ctype == patching.STRATEGIC:
                if rt.schemas:  # kube-apiserver refuses strategic merge on custom resources
                    raise errors.unsupported_media(ctype)
                patched = patching.strategic_merge(old, body)
            else:
                raise errors.unsupported_media(ctype)
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch did not result in an object")
        rv = (patched.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.stale(rt.plural, rt.group, name)
        return 200, self._replace(rt, version, old, patched, sub, params, warnings)

    def _existing(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        old = self.store.get(rt.key, namespace, name)
        if old is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return old

    def _replace(self, rt: ResourceType, version: str, old: dict[str, Any], new: dict[str, Any], sub: str,
                 params: dict[str, str], warnings: list[str]) -> dict[str, Any]:
        if sub == "status":
            status = new.get("status")
            new = copy.deepcopy(old)  # a status write changes the status only
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif sub:
            raise errors.path_not_found()
        elif "status" in rt.subresources:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        for field in _PRESERVED_META:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta.pop("managedFields", None)
        new["apiVersion"], new["kind"] = rt.api_version(rt.versions[0]), rt.kind
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(rt.kind, rt.group, meta["name"], [{"reason": "FieldValueForbidden", "field": "metadata.finalizers",
                    "message": f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)!r}"}])
        new = self._admit(rt, version, new, old, params, warnings, status_only=sub == "status")
        if rt.key == CRD_KEY and sub != "status":
            new = self._crd_admit(new)
            new["status"] = _crd_established_status(new, old.get("status"))
        if rt.has_spec:
            meta = new["metadata"]
            meta["generation"] = old_meta.get("generation", 1) + (1 if _spec_of(rt, new) != _spec_of(rt, old) else 0)
        if params.get("dryRun"):
            return new
        if new == old:
            return old  # a no-op write changes nothing, not even the resourceVersion
        stored = self.store.replace(rt.key, old, new)
        if rt.key == CRD_KEY:
            self.registry.add(from_crd(stored))
        if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
            self._remove(rt, stored)
        elif stored["metadata"].get("deletionTimestamp"):
            self.on_delete(rt, stored)  # a finalizer went away: the GC may have work to do
        return stored

    # --- delete ---
    def delete(self, rt: ResourceType, namespace: str | None, name: str, options: dict[str, Any],
               params: dict[str, str]) -> dict[str, Any]:
        obj = self._existing(rt, namespace, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise errors.conflict(rt.plural, rt.group, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                  f"UID in object meta: {obj['metadata']['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name, "Precondition failed: ResourceVersion in precondition: "
                                  f"{pre['resourceVersion']}, ResourceVersion in object meta: {obj['metadata']['resourceVersion']}")
        policy = options.get("propagationPolicy") or params.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise errors.invalid("DeleteOptions", "", "", [{"reason": "FieldValueNotSupported", "field": "propagationPolicy",
                "message": f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"'}])
        if options.get("dryRun") or params.get("dryRun"):
            return obj
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if rt.key == NAMESPACE_KEY:
            policy = "Foreground"  # a namespace waits for its content to go, as the namespace controller does
        extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy or "")
        if extra and extra not in finalizers and not obj["metadata"].get("deletionTimestamp"):
            finalizers.append(extra)
        if not finalizers:
            return self._remove(rt, obj)
        if obj["metadata"].get("deletionTimestamp"):
            return obj
        new = copy.deepcopy(obj)
        new["metadata"].update({"deletionTimestamp": now_iso(), "deletionGracePeriodSeconds": 0, "finalizers": finalizers})
        if rt.has_spec:
            new["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        if rt.key == NAMESPACE_KEY:
            new["status"] = {"phase": "Terminating"}
        stored = self.store.replace(rt.key, obj, new)
        self.on_delete(rt, stored)
        return stored

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        gone = self.store.remove(rt.key, obj)
        if rt.key == CRD_KEY:
            crd_rt = from_crd(obj)
            self.registry.remove(crd_rt.key)
            self.store.drop_resource(crd_rt.key)
        self.on_delete(rt, gone)
        return gone

    def drop_finalizer(self, rt: ResourceType, obj: dict[str, Any], finalizer: str) -> None:
        """Used by the garbage collector when its part of a deletion is done."""
        current = self.store.get(rt.key, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if current is None or finalizer not in (current["metadata"].get("finalizers") or []):
            return
        new = copy.deepcopy(current)
        new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != finalizer]
        if rt.key == NAMESPACE_KEY:
            new.setdefault("spec", {})["finalizers"] = []
        stored = self.store.replace(rt.key, current, new)
        if not stored["metadata"]["finalizers"]:
            self._remove(rt, stored)

    # --- CRDs ---
    def _crd_admit(self, crd: dict[str, Any]) -> dict[str, Any]:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        causes = []
        for field, value in (("spec.group", spec.get("group")), ("spec.names.plural", names.get("plural")),
                             ("spec.names.kind", names.get("kind")), ("spec.versions", spec.get("versions"))):
            if not value:
                causes.append({"reason": "FieldValueRequired", "field": field, "message": "Required value"})
        if not causes and crd["metadata"]["name"] != f"{names['plural']}.{spec['group']}":
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                           "message": f'Invalid value: "{crd["metadata"]["name"]}": must be spec.names.plural+"."+spec.group'})
        if not causes and sum(1 for v in spec["versions"] if v.get("storage")) != 1:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.versions",
                           "message": "Invalid value: []: must have exactly one version marked as storage version"})
        if causes:
            raise errors.invalid("CustomResourceDefinition", "apiextensions.k8s.io", crd["metadata"]["name"], causes)
        return crd


def _crd_pending_status(crd: dict[str, Any]) -> dict[str, Any]:
    spec = crd["spec"]
    return {"conditions": None, "acceptedNames": {"plural": "", "kind": ""},
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")]}


def _crd_established_status(crd: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """Names accepted and Established; a condition keeps its lastTransitionTime while its status holds."""
    spec, stamp = crd["spec"], now_iso()
    before = {c["type"]: c for c in (old or {}).get("conditions") or []}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stored = list((old or {}).get("storedVersions") or [])
    for version in spec["versions"]:
        if version.get("storage") and version["name"] not in stored:
            stored.append(version["name"])
    conditions = []
    for type_, reason, message in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                   ("Established", "InitialNamesAccepted", "the initial names have been accepted")):
        kept = before.get(type_, {})
        since = kept.get("lastTransitionTime") if kept.get("status") == "True" else None
        conditions.append({"type": type_, "status": "True", "lastTransitionTime": since or stamp, "reason": reason,
                           "message": message})
    return {"conditions": conditions, "acceptedNames": names, "storedVersions": stored}


def _spec_of(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """What a generation covers: all but metadata, and status where it is a subresource."""
    skip = {"metadata", "status"} if "status" in rt.subresources else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}
