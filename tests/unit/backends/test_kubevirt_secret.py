"""The VM's cloud-init Secret exists before its VM is created, whatever 409s the API answers on the way."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ssvm_operator.backends.base import BackendError
from ssvm_operator.backends.kubevirt.backend import KubeVirtBackend

SECRET = {"metadata": {"name": "z1-ssvm-1-cloudinit"}, "stringData": {"userdata": "#cloud-config"}}


class Secrets:
    """Secrets by name; `conflicts` creates and replaces answer 409 first (None) without writing."""

    def __init__(self, conflicts: int = 0, existing: bool = False) -> None:
        self.conflicts = conflicts
        self.stored: dict[str, dict[str, Any]] = {}
        if existing:
            self.stored[SECRET["metadata"]["name"]] = {"metadata": {"name": SECRET["metadata"]["name"], "resourceVersion": "7"},
                                                       "stringData": {"userdata": "old"}}

    def _conflict(self) -> bool:
        if self.conflicts > 0:
            self.conflicts -= 1
            return True
        return False

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if self._conflict() or body["metadata"]["name"] in self.stored:
            return None
        self.stored[body["metadata"]["name"]] = body
        return body

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.stored.get(name)

    async def replace_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if self._conflict() or body["metadata"]["name"] not in self.stored:
            return None
        self.stored[body["metadata"]["name"]] = body
        return body


def ensure(secrets: Secrets) -> None:
    backend = KubeVirtBackend.__new__(KubeVirtBackend)
    backend.kube = secrets   # only the Secret calls are used
    asyncio.run(backend._ensure_secret("ns", SECRET))


def test_a_conflicting_create_of_a_missing_secret_is_created_again():
    secrets = Secrets(conflicts=1)
    ensure(secrets)
    assert secrets.stored[SECRET["metadata"]["name"]]["stringData"] == SECRET["stringData"]


def test_an_existing_secret_is_replaced_with_the_new_content():
    secrets = Secrets(existing=True)
    ensure(secrets)
    assert secrets.stored[SECRET["metadata"]["name"]]["stringData"] == SECRET["stringData"]


def test_a_secret_that_cannot_be_written_is_an_error_not_a_silent_success():
    secrets = Secrets(conflicts=100)
    with pytest.raises(BackendError) as caught:
        ensure(secrets)
    assert caught.value.reason == "Conflict" and SECRET["metadata"]["name"] not in secrets.stored
