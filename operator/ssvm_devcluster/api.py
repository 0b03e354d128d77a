"""HTTP dispatch of the emulated API: discovery, reads (list/get, tables, paging), writes, watch,
and the dev cluster's own `/_devcluster/*` endpoints (the request log).
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import aiohttp.web
import multidict

from ssvm_devcluster import errors, openapi, protobuf, requestinfo, selectors, tables, watch
from ssvm_devcluster.faults import SPARED_AGENTS, FaultPlan
from ssvm_devcluster.gc import GarbageCollector
from ssvm_devcluster.registry import NAMESPACE_KEY, Registry, ResourceType
from ssvm_devcluster.store import HISTORY_LIMIT, Store
from ssvm_devcluster.writes import Writer

log = logging.getLogger(__name__)

VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0-ssvm-devcluster", "gitCommit": "", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "n/a", "compiler": "python", "platform": "linux/amd64",
           "emulationMajor": "1", "emulationMinor": "37"}


class Api:
    def __init__(self, history_limit: int = HISTORY_LIMIT, faults: FaultPlan | None = None) -> None:
        self.faults = faults if faults is not None else FaultPlan.from_env()
        self.store = Store(history_limit)
        self.registry = Registry()
        self.gc = GarbageCollector(self.store, self.registry)
        self.writer = Writer(self.store, self.registry, self.gc.notify)
        self.gc.writer = self.writer
        self.log = requestinfo.RequestLog()
        self.stopping = asyncio.Event()
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.store.insert(NAMESPACE_KEY, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                                              "name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                                              "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
                              generation=False)

    # --- entry point ---
    async def handle(self, request: aiohttp.web.BaseRequest, body: bytes) -> aiohttp.web.StreamResponse:
        params = dict(request.query)
        params.pop(watch.CUT_AFTER, None)   # the server's own mark, never a client's
        info = requestinfo.parse(request.method, request.path, params)
        code = 500
        logged_early = info.verb == "watch"  # a watch is logged when it opens: it may stay open for long
        if logged_early:
            self.log.record(info, request.headers.get("User-Agent", ""), 200)
        try:
            if info.is_resource and not info.path.startswith("/_devcluster"):
                injected = await self._inject(info, request.headers.get("User-Agent", ""), params, b'"resourceVersion"' in body)
                if injected is not None:
                    code = injected.status
                    return injected
            response = await self._dispatch(request, info, body, params)
            code = response.status
            return response
        except errors.PageNotFound as e:
            code = e.code
            return aiohttp.web.Response(text=e.TEXT, status=404, content_type="text/plain", charset="utf-8")
        except errors.ApiError as e:
            code = e.code
            return aiohttp.web.json_response(e.status(), status=e.code)
        except Exception as e:  # noqa: BLE001 - report a bug as a 500 Status, as a real server would
            log.exception("internal error serving %s %s", request.method, request.path)
            code = 500
            return aiohttp.web.json_response(errors.ApiError(500, "InternalError", f"Internal error occurred: {e!r}").status(),
                                             status=500)
        finally:
            if not info.path.startswith("/_devcluster") and not logged_early:
                self.log.record(info, request.headers.get("User-Agent", ""), code)

    async def _inject(self, info: requestinfo.RequestInfo, agent: str, params: dict[str, str],
                      preconditioned: bool) -> aiohttp.web.Response | None:
        """An injected fault's answer (faults.py), or None to serve the request (perhaps late, or a shorter watch)."""
        if info.verb == "watch" and self.faults.cutWatch > 0 and not agent.startswith(SPARED_AGENTS):
            params[watch.CUT_AFTER] = str(self.faults.cutWatch)
            self.faults.counts["cutWatch"] += 1   # counted when armed: a stream asked to end sooner is ended, not cut
        fault = self.faults.decide(info.verb, agent, preconditioned)
        if fault == "slow":
            await asyncio.sleep(self.faults.slowSeconds)
        elif fault == "conflict":
            raise errors.ApiError(409, "Conflict", f"Operation cannot be fulfilled on {info.resource} \"{info.name or ''}\": "
                                  "the object has been modified; please apply your changes to the latest version and try again")
        elif fault == "error":
            raise errors.ApiError(500, "InternalError", "Internal error occurred: injected fault")
        elif fault == "throttle":
            status = errors.ApiError(429, "TooManyRequests", "the server has received too many requests and has asked us to "
                                     "try again later").status()
            status["details"] = {"retryAfterSeconds": 1}
            return aiohttp.web.json_response(status, status=429, headers={"Retry-After": "1"})
        return None

    async def _dispatch(self, request: aiohttp.web.BaseRequest, info: requestinfo.RequestInfo, body: bytes,
                        params: dict[str, str]) -> aiohttp.web.StreamResponse:
        path = info.path.rstrip("/") or "/"
        if path.startswith("/_devcluster"):
            return self._serve_devcluster(request, path, params)
        if not info.is_resource:
            return self._serve_discovery(request.method, path)
        rt = self.registry.find(info.group, info.version, info.resource)
        if rt is None:
            raise self._not_served(info.group)
        namespace = info.namespace if rt.namespaced else None
        if rt.key == NAMESPACE_KEY:
            namespace = None
        if info.subresource and info.subresource not in rt.subresources:
            raise errors.path_not_found()
        warnings: list[str] = []
        verb = info.verb
        ctype = request.headers.get("Content-Type", "")
        if body and "cbor" in ctype:
            raise errors.unsupported_media(ctype)
        if body and "protobuf" in ctype:
            body = json.dumps(protobuf.decode(body)).encode()  # kubectl's typed clients send protobuf
        if verb == "list":
            return _json(self._list(request, rt, info.version, namespace, params))
        if verb == "watch":
            return await watch.serve(request, self.store, rt, info.version, namespace, info.name, params,
                                     self.stopping, _present)
        if verb == "get":
            obj = self.store.get(rt.key, namespace, info.name or "")
            if obj is None:
                raise errors.not_found(rt.plural, rt.group, info.name or "")
            if tables.wants_table(request.headers.get("Accept", "")) and not info.subresource:
                return _json(tables.to_table(rt, info.version, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}))
            return _json(_present(obj, info.version))
        if verb == "create":
            if info.subresource or info.name:
                raise errors.method_not_allowed()
            obj = self.writer.create(rt, info.version, info.namespace, _decode(body), params, warnings)
            return _json(_present(obj, info.version), 201, warnings)
        if verb == "update":
            obj = self.writer.update(rt, info.version, namespace, info.name or "", _decode(body), info.subresource,
                                     params, warnings)
            return _json(_present(obj, info.version), 200, warnings)
        if verb == "patch":
            code, obj = self.writer.patch(rt, info.version, namespace, info.name or "", body,
                                          request.headers.get("Content-Type", ""), info.subresource, params, warnings)
            return _json(_present(obj, info.version), code, warnings)
        if verb == "delete":
            options = _decode(body) if body.strip() else {}
            obj = self.writer.delete(rt, namespace, info.name or "", options or {}, params)
            return _json(_present(obj, info.version), 200)
        if verb == "deletecollection":
            options = _decode(body) if body.strip() else {}
            match = selectors.object_matcher(params.get("labelSelector"), params.get("fieldSelector"), rt.namespaced)
            deleted = []
            for obj in list(self.store.list(rt.key, namespace)):
                if match(obj):
                    deleted.append(self.writer.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                                                      options or {}, params))
            return _json({"kind": rt.list_kind, "apiVersion": rt.api_version(info.version),
                          "metadata": {"resourceVersion": str(self.store.rv)},
                          "items": [_present(o, info.version) for o in deleted]})
        raise errors.method_not_allowed()

    def _list(self, request: aiohttp.web.BaseRequest, rt: ResourceType, version: str, namespace: str | None,
              params: dict[str, str]) -> dict[str, Any]:
        match = selectors.object_matcher(params.get("labelSelector"), params.get("fieldSelector"), rt.namespaced)
        objs = [o for o in self.store.list(rt.key, namespace) if match(o)]
        objs.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        meta: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        start = 0
        if params.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(params["continue"]))
                start, meta["resourceVersion"] = int(token["start"]), token["rv"]
            except Exception:  # noqa: BLE001 - any malformed token is the client's error
                raise errors.bad_request("continue key is not valid")
        limit = int(params.get("limit") or 0)
        page = objs[start:start + limit] if limit else objs[start:]
        if limit and start + limit < len(objs):
            token = {"start": start + limit, "rv": meta["resourceVersion"]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = len(objs) - start - limit
        if tables.wants_table(request.headers.get("Accept", "")):
            return tables.to_table(rt, version, page, meta)
        if rt.crd_name:
            meta.setdefault("continue", "")   # an unstructured list always says it, empty on its last page
        return {"kind": rt.list_kind, "apiVersion": rt.api_version(version), "metadata": meta,
                "items": [_present(o, version) for o in page]}

    # --- discovery ---
    def _serve_discovery(self, method: str, path: str) -> aiohttp.web.StreamResponse:
        if method != "GET":
            raise errors.method_not_allowed()
        if path in ("/healthz", "/readyz", "/livez"):
            return aiohttp.web.Response(text="ok")
        if path == "/version":
            return _json(VERSION)
        if path == "/openapi/v3":
            return _json(openapi.index(self.registry))
        if path.startswith("/openapi/v3/"):
            doc = openapi.document(self.registry, path[len("/openapi/v3/"):])
            if doc is None:
                raise errors.path_not_found()
            return _json(doc)
        if path == "/":
            paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
            for group, versions in self.registry.groups().items():
                if group:
                    paths += [f"/apis/{group}"] + [f"/apis/{group}/{v}" for v in versions]
            return _json({"paths": sorted(paths)})
        if path == "/api":
            return _json(self.registry.api_versions())
        if path == "/apis":
            return _json(self.registry.api_group_list())
        parts = path.strip("/").split("/")
        doc = None
        if parts[0] == "api" and len(parts) == 2:
            doc = self.registry.resource_list("", parts[1])
        elif parts[0] == "apis" and len(parts) == 2:
            doc = self.registry.api_group(parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            doc = self.registry.resource_list(parts[1], parts[2])
        if doc is None:
            raise self._not_served(parts[1] if parts[0] == "apis" and len(parts) > 1 else "")
        return _json(doc)

    def _not_served(self, group: str) -> errors.ApiError:
        """A Status for paths of the core and built-in groups, plain text for those of CRD or unknown groups."""
        return errors.path_not_found() if not group or self.registry.is_builtin_group(group) else errors.PageNotFound()

    # --- the dev cluster's own endpoints ---
    def _serve_devcluster(self, request: aiohttp.web.BaseRequest, path: str, params: dict[str, str]) -> aiohttp.web.StreamResponse:
        if path == "/_devcluster/requests":
            if request.method == "DELETE":
                self.log.clear()
                return _json({"cleared": True})
            return _json({"items": self.log.entries(int(params.get("since") or 0))})
        if path == "/_devcluster/healthz":
            return _json({"ok": True, "resourceVersion": self.store.rv})
        raise errors.path_not_found()

    def shutdown(self) -> None:
        """End every open watch so that the server can close its connections promptly."""
        self.stopping.set()
        for watchers in self.store.watchers.values():
            for w in list(watchers):
                w.queue.put_nowait(None)


def _present(obj: dict[str, Any], version: str) -> dict[str, Any]:
    """The object as served at the requested version (no conversion needed beyond apiVersion)."""
    api_version = obj.get("apiVersion", "")
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    wanted = f"{group}/{version}" if group else version
    if wanted == api_version:
        return obj
    return {**obj, "apiVersion": wanted}


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        try:
            import yaml
            return yaml.safe_load(body)
        except Exception as e:  # noqa: BLE001 - any decoding failure is the client's
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {e}")


def _json(data: Any, status: int = 200, warnings: list[str] | None = None) -> aiohttp.web.Response:
    # one Warning header per warning, in the format kubectl prints as "Warning: ..."
    headers = multidict.CIMultiDict(("Warning", f"299 - {json.dumps(w)}") for w in warnings or [])
    return aiohttp.web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status,
                                content_type="application/json", headers=headers)
