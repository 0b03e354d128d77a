"""OpenAPI v3 documents, as far as kubectl needs them: every PATCH operation declares the
`fieldValidation` query parameter, so kubectl leaves validation to this server, and CRD kinds
carry their schemas (built-in kinds have none: kubectl then uses its compiled-in types).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from ssvm_devcluster.registry import Registry, ResourceType


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(rt: ResourceType, version: str) -> str:
    reverse = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reverse}.{version}.{rt.kind}"


def _document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    rts = [rt for rt in registry.types.values() if rt.group == group and version in rt.versions]
    if not rts:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in rts:
        gvk = {"group": group, "version": version, "kind": rt.kind}
        prefix = f"/{_gv_path(group, version)}" + ("/namespaces/{namespace}" if rt.namespaced else "")
        params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                  {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
                  {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}}]
        ok = {"200": {"description": "OK"}}
        paths[f"{prefix}/{rt.plural}/{{name}}"] = {
            "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get", "responses": ok},
            "put": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "put", "parameters": params, "responses": ok},
            "patch": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch", "parameters": params,
                      "responses": ok},
            "delete": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "delete", "responses": ok},
        }
        paths[f"{prefix}/{rt.plural}"] = {
            "post": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "post", "parameters": params,
                     "responses": ok},
            "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "list", "responses": ok},
        }
        body = rt.schemas.get(version)
        if body:
            schemas[_schema_name(rt, version)] = {**body, "x-kubernetes-group-version-kind": [gvk]}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (ssvm dev cluster)", "version": "v1.37.0"},
            "paths": paths, "components": {"schemas": schemas}}


def index(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = _document(registry, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            paths[_gv_path(group, version)] = {"serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"}
    return {"paths": paths}


def document(registry: Registry, path: str) -> dict[str, Any] | None:
    """`path` is what follows /openapi/v3/, e.g. `api/v1` or `apis/ssvm.io/v1alpha1`."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        return _document(registry, "", parts[1])
    if parts[0] == "apis" and len(parts) == 3:
        return _document(registry, parts[1], parts[2])
    return None
