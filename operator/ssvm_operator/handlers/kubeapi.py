"""The few API calls handlers make beyond kopf's own patching: create/delete/patch of our objects.

The `kubernetes` client is blocking: each call runs in a thread, bounded by a timeout.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, TypeVar

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from .. import constants as c
from ..blocking import call_in_thread

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def load_api_client() -> k8s.ApiClient:
    """In-cluster service account, else the current kubeconfig (as kopf itself logs in)."""
    import os

    from kubernetes import config

    configuration = k8s.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        # KUBECONFIG read now, not at import time (the client's default is fixed when first imported).
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration)
    return k8s.ApiClient(configuration)


class KubeApi:
    def __init__(self, api_client: k8s.ApiClient, timeout: float = 15.0) -> None:
        self.api_client = api_client
        self.custom = k8s.CustomObjectsApi(api_client)
        self.timeout = timeout

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await call_in_thread(fn, *args, timeout=self.timeout, **kwargs)
        except asyncio.TimeoutError:
            raise ApiError(504, "Timeout", f"API call timed out after {self.timeout}s") from None
        except ApiException as e:
            raise ApiError(e.status or 500, e.reason or "ApiError", (e.body or "")[:300] if isinstance(e.body, str) else str(e.reason)) from None

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call(self.custom.get_namespaced_custom_object, c.GROUP, c.VERSION, namespace, plural, name)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        result = await self._call(self.custom.list_namespaced_custom_object, c.GROUP, c.VERSION, namespace, plural)
        return list(result.get("items") or [])

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The created object, or None when one of that name exists (409: the name is the lock)."""
        try:
            return await self._call(self.custom.create_namespaced_custom_object, c.GROUP, c.VERSION, namespace, plural, body)
        except ApiError as e:
            if e.status == 409:
                return None
            raise

    async def delete(self, plural: str, namespace: str, name: str) -> bool:
        try:
            await self._call(self.custom.delete_namespaced_custom_object, c.GROUP, c.VERSION, namespace, plural, name)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    async def patch(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self._call(self.custom.patch_namespaced_custom_object, c.GROUP, c.VERSION, namespace, plural, name, patch,
                                _content_type=MERGE_PATCH)

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any],
                           resource_version: str | None = None) -> dict[str, Any]:
        """A merge patch of status; with `resource_version` it fails with 409 if the object moved on."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self._call(self.custom.patch_namespaced_custom_object_status, c.GROUP, c.VERSION, namespace, plural, name,
                                body, _content_type=MERGE_PATCH)
