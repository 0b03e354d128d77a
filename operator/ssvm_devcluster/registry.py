"""Which resources the dev cluster serves: built-in kinds, and custom ones from applied CRDs."""
from __future__ import annotations

import dataclasses
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclasses.dataclass
class ResourceType:
    group: str
    versions: list[str]  # served versions, the preferred (storage) one first
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = dataclasses.field(default_factory=list)
    categories: list[str] = dataclasses.field(default_factory=list)
    subresources: list[str] = dataclasses.field(default_factory=list)  # "status", "scale"
    # per version: openAPIV3Schema (CRDs only) and additionalPrinterColumns
    schemas: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    columns: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    # built-ins keep spec/status apart only where a real server does (generation tracking)
    has_spec: bool = True
    crd_name: str | None = None

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def discovery_entries(self) -> list[dict[str, Any]]:
        entry = {
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": list(ALL_VERBS),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        out = [entry]
        for sub in self.subresources:
            kind = "Scale" if sub == "scale" else self.kind
            out.append({"name": f"{self.plural}/{sub}", "singularName": "", "namespaced": self.namespaced,
                        "kind": kind, "verbs": ["get", "patch", "update"]})
        return out


def _b(group: str, version: str, plural: str, kind: str, namespaced: bool, *, short: tuple[str, ...] = (),
       sub: tuple[str, ...] = (), has_spec: bool = True, cats: tuple[str, ...] = ()) -> ResourceType:
    return ResourceType(group=group, versions=[version], plural=plural, kind=kind, namespaced=namespaced,
                        short_names=list(short), subresources=list(sub), has_spec=has_spec, categories=list(cats))


def builtin_types() -> list[ResourceType]:
    """The built-in kinds the operator, kubectl, kopf and helm use."""
    return [
        _b("", "v1", "namespaces", "Namespace", False, short=("ns",), sub=("status",), has_spec=False),
        _b("", "v1", "events", "Event", True, short=("ev",), has_spec=False),
        _b("", "v1", "secrets", "Secret", True, has_spec=False),
        _b("", "v1", "configmaps", "ConfigMap", True, short=("cm",), has_spec=False),
        _b("", "v1", "serviceaccounts", "ServiceAccount", True, short=("sa",), has_spec=False),
        _b("", "v1", "services", "Service", True, short=("svc",), sub=("status",), cats=("all",)),
        _b("", "v1", "pods", "Pod", True, short=("po",), sub=("status",), cats=("all",)),
        _b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, short=("pvc",), sub=("status",)),
        _b("events.k8s.io", "v1", "events", "Event", True, short=("ev",), has_spec=False),
        _b("coordination.k8s.io", "v1", "leases", "Lease", True),
        _b("apps", "v1", "deployments", "Deployment", True, short=("deploy",), sub=("status", "scale"), cats=("all",)),
        _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, has_spec=False),
        _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, has_spec=False),
        _b("rbac.authorization.k8s.io", "v1", "roles", "Role", True, has_spec=False),
        _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, has_spec=False),
        _b("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
           short=("crd", "crds"), sub=("status",)),
    ]


CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACE_KEY = ("", "namespaces")


def from_crd(crd: dict[str, Any]) -> ResourceType:
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    served = [v for v in spec.get("versions", []) if v.get("served", True)]
    storage_first = sorted(served, key=lambda v: not v.get("storage", False))
    rt = ResourceType(
        group=spec["group"], versions=[v["name"] for v in storage_first], plural=names["plural"], kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced", singular=names.get("singular", ""),
        short_names=list(names.get("shortNames", [])), categories=list(names.get("categories", [])),
        crd_name=crd["metadata"]["name"],
    )
    for v in storage_first:
        subs = v.get("subresources") or {}
        for sub in ("status", "scale"):
            if sub in subs and sub not in rt.subresources:
                rt.subresources.append(sub)
        rt.schemas[v["name"]] = (v.get("schema") or {}).get("openAPIV3Schema") or {}
        rt.columns[v["name"]] = list(v.get("additionalPrinterColumns") or [])
    return rt


class Registry:
    """Resource types by (group, plural), plus lookups by group/version for discovery."""

    def __init__(self) -> None:
        self.types: dict[tuple[str, str], ResourceType] = {}
        for rt in builtin_types():
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self.types[rt.key] = rt

    def remove(self, key: tuple[str, str]) -> None:
        self.types.pop(key, None)

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self.types.get((group, plural))
        if rt is None or version not in rt.versions:
            return None
        return rt

    def is_builtin_group(self, group: str) -> bool:
        return any(rt.group == group and rt.crd_name is None for rt in self.types.values())

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rt in self.types.values():
            versions = out.setdefault(rt.group, [])
            for v in rt.versions:
                if v not in versions:
                    versions.append(v)
        return out

    # --- discovery documents ---
    def api_versions(self) -> dict[str, Any]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}

    def _group_doc(self, group: str, versions: list[str]) -> dict[str, Any]:
        ordered = sorted(versions, key=_version_priority)
        return {"name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered],
                "preferredVersion": {"groupVersion": f"{group}/{ordered[0]}", "version": ordered[0]}}

    def api_group_list(self) -> dict[str, Any]:
        groups = [self._group_doc(g, vs) for g, vs in sorted(self.groups().items()) if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.groups().get(group)
        if not group or not versions:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group, versions)}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        found = [rt for rt in self.types.values() if rt.group == group and version in rt.versions]
        if not found:
            return None
        resources = [e for rt in sorted(found, key=lambda r: r.plural) for e in rt.discovery_entries()]
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version ordering: GA > beta > alpha, higher numbers first."""
    import re
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor)
