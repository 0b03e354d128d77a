"""Secrets in memory for the keys and guest controllers' unit tests and the bench."""
from __future__ import annotations

from typing import Any


class MemorySecretsApi:
    """SecretsApi in memory (unit tests, bench): resourceVersions count up like a server's."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self._rv = 0
        self.reads = 0

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        found = self.secrets.get((namespace, name))
        return None if found is None else {**found, "metadata": dict(found["metadata"])}

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if (namespace, body["metadata"]["name"]) in self.secrets:
            return None
        return self.put(namespace, body)

    def put(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        stored = {**body, "metadata": {**body["metadata"], "namespace": namespace, "resourceVersion": str(self._rv)}}
        self.secrets[(namespace, body["metadata"]["name"])] = stored
        return stored

    async def replace_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        found = self.secrets.get((namespace, body["metadata"]["name"]))
        if found is None or found["metadata"].get("resourceVersion") != body["metadata"].get("resourceVersion"):
            return None
        return self.put(namespace, body)
