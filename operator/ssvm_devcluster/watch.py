"""Watch streams: initial state or a replay from a resourceVersion, selector-aware event types
(an object leaving a selector is DELETED for that watch), bookmarks, timeouts, 410 Gone.
"""
from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import aiohttp.web

from ssvm_devcluster import errors, selectors
from ssvm_devcluster.registry import ResourceType
from ssvm_devcluster.store import Event, Store


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _event_line(event: Event, event_type: str, version: str, present: Callable[[dict[str, Any], str], dict[str, Any]]) -> bytes:
    """Encode once per event, type and version, however many watches carry it."""
    key = (event_type, version)
    line = event.encoded.get(key)
    if line is None:
        line = event.encoded[key] = _line(event_type, present(event.obj, version))
    return line


def translate(event: Event, match: selectors.Matcher) -> str | None:
    """The event type this watch sees, given its selectors, or None to skip the event."""
    now = match(event.obj)
    if event.type == "MODIFIED":
        before = event.old is not None and match(event.old)
        if now and before:
            return "MODIFIED"
        if now:
            return "ADDED"
        if before:
            return "DELETED"
        return None
    return event.type if now else None


CUT_AFTER = "_devclusterCutAfter"   # set by injected faults (api.py), never by a client: the stream is cut, not ended


async def serve(request: aiohttp.web.BaseRequest, store: Store, rt: ResourceType, version: str,
                namespace: str | None, name: str | None, params: dict[str, str], stopping: asyncio.Event,
                present: Callable[[dict[str, Any], str], dict[str, Any]]) -> aiohttp.web.StreamResponse:
    field_selector = params.get("fieldSelector")
    if name:
        field_selector = f"metadata.name={name}" + (f",{field_selector}" if field_selector else "")
    match = selectors.object_matcher(params.get("labelSelector"), field_selector, rt.namespaced)
    rv_param = params.get("resourceVersion", "")
    initial = params.get("sendInitialEvents") == "true"
    since: int | None = None
    if rv_param not in ("", "0") and not initial:
        try:
            since = int(rv_param)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {rv_param!r}")
    subscribed = store.subscribe(rt.key, namespace, since)
    # The initial state is read in the same instant the watcher subscribes (no await in between): every
    # queued event is then newer than it. Read later, the queue would replay older versions after it.
    snapshot_rv = store.rv
    snapshot = sorted(store.list(rt.key, namespace), key=lambda o: int(o["metadata"]["resourceVersion"])) \
        if subscribed is not None and since is None else []

    response = aiohttp.web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    await response.prepare(request)

    if subscribed is None:
        status = errors.gone(f"too old resource version: {since} ({store.compacted[rt.key]})").status()
        await response.write(_line("ERROR", status))
        await response.write_eof()
        return response

    watcher, replay = subscribed
    cut = False
    try:
        if since is None:
            # the current state first, as ADDED events, from the same instant the watcher started
            for obj in snapshot:
                if match(obj):
                    await response.write(_line("ADDED", present(obj, version)))
            if initial:
                mark = {"kind": rt.kind, "apiVersion": rt.api_version(version), "metadata": {
                    "resourceVersion": str(snapshot_rv), "annotations": {"k8s.io/initial-events-end": "true"}}}
                await response.write(_line("BOOKMARK", mark))
        for event in replay:
            kind = translate(event, match)
            if kind:
                await response.write(_event_line(event, kind, version, present))
        timeout = float(params.get("timeoutSeconds") or random.uniform(1800, 3600))
        cut_after = float(params.get(CUT_AFTER) or 0)
        bookmarks = params.get("allowWatchBookmarks") == "true"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (min(timeout, cut_after) if cut_after else timeout)
        while not stopping.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                cut = bool(cut_after) and cut_after < timeout
                break
            try:
                event = await asyncio.wait_for(watcher.queue.get(), timeout=min(remaining, 30.0))
            except asyncio.TimeoutError:
                if bookmarks:
                    mark = {"kind": rt.kind, "apiVersion": rt.api_version(version),
                            "metadata": {"resourceVersion": str(store.rv)}}
                    await response.write(_line("BOOKMARK", mark))
                continue
            if event is None:  # the resource went away (its CRD was deleted)
                break
            kind = translate(event, match)
            if kind:
                await response.write(_event_line(event, kind, version, present))
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    finally:
        store.unsubscribe(watcher)
    if cut and request.transport is not None:
        request.transport.abort()   # no closing chunk: the client sees the connection drop mid-stream
        return response
    try:
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response
