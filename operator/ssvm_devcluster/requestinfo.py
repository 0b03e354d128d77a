"""What a request asks for (as kube-apiserver's RequestInfo), and the log of every request."""
from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any


@dataclasses.dataclass(frozen=True)
class RequestInfo:
    method: str
    path: str
    is_resource: bool = False
    verb: str = ""  # get list watch create update patch delete deletecollection; or the HTTP method, lower
    group: str = ""
    version: str = ""
    namespace: str | None = None
    resource: str = ""
    name: str | None = None
    subresource: str = ""


def parse(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    method = method.upper()
    parts = [p for p in path.strip("/").split("/") if p]
    plain = RequestInfo(method=method, path=path, verb=method.lower())
    if not parts or parts[0] not in ("api", "apis"):
        return plain
    if parts[0] == "api":
        if len(parts) < 3:
            return plain
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return plain
        group, version, rest = parts[1], parts[2], parts[3:]
    namespace = None
    # /namespaces/{ns}/{resource}... ; but /namespaces and /namespaces/{name}[/status] address namespaces
    own_sub = group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")  # a namespace's subresources
    if rest[0] == "namespaces" and len(rest) >= 3 and not own_sub:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:])
    if resource == "namespaces" and name is not None and group == "":
        namespace = name  # kube-apiserver reports a namespace's own name as its namespace
    watch = query.get("watch") in ("true", "1")
    if method == "GET":
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = method.lower()
    return RequestInfo(method=method, path=path, is_resource=True, verb=verb, group=group, version=version,
                       namespace=namespace, resource=resource, name=name, subresource=subresource)


class RequestLog:
    """A bounded record of every request; a later step derives RBAC rules from it."""

    def __init__(self, limit: int = 100_000) -> None:
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)
        self._seq = 0

    def record(self, info: RequestInfo, user_agent: str, code: int) -> None:
        self._seq += 1
        self._entries.append({
            "seq": self._seq, "time": time.time(), "method": info.method, "path": info.path,
            "verb": info.verb, "group": info.group, "version": info.version, "resource": info.resource,
            "subresource": info.subresource, "namespace": info.namespace, "name": info.name,
            "userAgent": user_agent, "code": code, "resourceRequest": info.is_resource,
        })

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self._entries if e["seq"] > since]

    def clear(self) -> None:
        self._entries.clear()
