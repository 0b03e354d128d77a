"""RBAC derived from what the operator did: request log entries -> required permissions -> compared with
the Roles and ClusterRoles the chart renders.

A log entry is one API request as the dev cluster records it (kube-apiserver's RequestInfo):
`verb`, `group`, `resource`, `subresource`, `namespace` (None for cluster-scoped requests and for
lists/watches across all namespaces), `resourceRequest` (False for discovery and other non-resource URLs),
`userAgent`, `code`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

ALL = "*"


@dataclasses.dataclass(frozen=True)
class Permission:
    group: str
    resource: str  # "resource" or "resource/subresource", as RBAC rules name them
    verb: str
    namespace: str | None  # None: needs a ClusterRole (cluster-scoped object or all namespaces)

    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.group, self.resource, self.verb, self.namespace or "")

    def __str__(self) -> str:
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {self.group or 'core'}/{self.resource} {where}"


def required(entries: Iterable[Mapping[str, Any]], is_operator=lambda e: True) -> set[Permission]:
    """The permissions the requests of the operator needed. Discovery (non-resource URLs) needs none:
    every authenticated user has it through system:discovery."""
    out: set[Permission] = set()
    for e in entries:
        if not e.get("resourceRequest") or not is_operator(e):
            continue
        resource = e["resource"] + (f"/{e['subresource']}" if e.get("subresource") else "")
        namespace = e.get("namespace")
        if e["group"] == "" and e["resource"] == "namespaces":
            namespace = None  # a namespace object is cluster-scoped, whatever RequestInfo says
        out.add(Permission(e["group"], resource, e["verb"], namespace))
    return out


@dataclasses.dataclass(frozen=True)
class Grant:
    group: str
    resource: str
    verb: str
    namespace: str | None  # None: from a ClusterRole (everywhere)


def granted(docs: Iterable[Mapping[str, Any]], service_account: str, sa_namespace: str) -> set[Grant]:
    """What the chart's (Cluster)RoleBindings give the operator's ServiceAccount."""
    docs = list(docs)
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out: set[Grant] = set()
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == service_account and s.get("namespace") == sa_namespace
                   for s in binding.get("subjects", [])):
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role = roles.get((ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"]))
        if role is None:
            continue
        for rule in role.get("rules", []):
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        out.add(Grant(group, resource, verb, namespace))
    return out


def allows(grant: Grant, need: Permission) -> bool:
    return (grant.group in (ALL, need.group) and grant.resource in (ALL, need.resource) and grant.verb in (ALL, need.verb)
            and (grant.namespace is None or grant.namespace == need.namespace))


def missing(needed: Iterable[Permission], grants: set[Grant]) -> list[Permission]:
    """Requests the chart would refuse (403 on a real cluster)."""
    return sorted((p for p in needed if not any(allows(g, p) for g in grants)), key=Permission.sort_key)


def unused(needed: Iterable[Permission], grants: set[Grant]) -> list[Grant]:
    """Grants no request used: more privilege than the operator needs."""
    needed = list(needed)
    return sorted((g for g in grants if not any(allows(g, p) for p in needed)),
                  key=lambda g: (g.group, g.resource, g.verb, g.namespace or ""))


def wildcards(grants: set[Grant]) -> list[Grant]:
    return [g for g in grants if ALL in (g.group, g.resource, g.verb)]
