"""Helpers of the dev cluster's tests: a JSON HTTP client and test objects."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

WIDGETS = "/apis/test.ssvm.io/v1alpha1"


class Http:
    """A thin JSON client: every call returns (status, body)."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def call(self, method: str, path: str, body: Any = None, *, ctype: str = "application/json",
                   headers: dict[str, str] | None = None, **params: str) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
        hdrs = {"Content-Type": ctype, **(headers or {})}
        async with self.session.request(method, self.url + path, data=data, params=params or None, headers=hdrs) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        return await self.call("GET", path, **params)

    async def post(self, path: str, body: Any, **params: str) -> tuple[int, Any]:
        return await self.call("POST", path, body, **params)

    async def put(self, path: str, body: Any, **params: str) -> tuple[int, Any]:
        return await self.call("PUT", path, body, **params)

    async def patch(self, path: str, body: Any, ctype: str = "application/merge-patch+json", **params: str) -> tuple[int, Any]:
        return await self.call("PATCH", path, body, ctype=ctype, **params)

    async def delete(self, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        return await self.call("DELETE", path, body, **params)

    async def watch(self, path: str, count: int, timeout: float = 10.0, **params: str) -> list[dict[str, Any]]:
        """Collect `count` watch events (bounded by `timeout`)."""
        events: list[dict[str, Any]] = []

        async def collect() -> None:
            async with self.session.get(self.url + path, params={"watch": "true", **params}) as r:
                assert r.status == 200, await r.text()
                async for line in r.content:
                    if line.strip():
                        events.append(json.loads(line))
                    if len(events) >= count:
                        return

        try:
            await asyncio.wait_for(collect(), timeout)
        except asyncio.TimeoutError:
            pass
        return events

    async def eventually(self, path: str, predicate, timeout: float = 10.0) -> tuple[int, Any]:
        """Poll GET `path` until predicate(status, body) holds; fail after `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status, body = await self.get(path)
            if predicate(status, body):
                return status, body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition not met for {path}: {status} {body}")
            await asyncio.sleep(0.05)


def widget(name: str, size: int = 1, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "test.ssvm.io/v1alpha1", "kind": "Widget", "metadata": meta, "spec": {"size": size, **spec}}


def widgets_path(ns: str, name: str = "", sub: str = "") -> str:
    path = f"{WIDGETS}/namespaces/{ns}/widgets"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path
