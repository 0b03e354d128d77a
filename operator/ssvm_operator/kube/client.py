"""The operator's one client of the Kubernetes API: custom objects of any group, API discovery and
Secrets, each call in a thread with a request timeout and an outer one, every failure one `ApiError`.

The `kubernetes` client is blocking; nothing else in the operator imports it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from typing import Any, Callable, TypeVar

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ssvm_operator import constants as c

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


# API calls get threads of their own: in asyncio's default pool (6 threads on 2 cores) they queued behind SSH sessions
API_WORKERS = 16
API_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=API_WORKERS, thread_name_prefix="kube-api")
DISCOVERY_TTL = 10.0   # seconds one API discovery answer is reused (KubeVirt or CDI installed later shows within it)


def load_api_client() -> k8s.ApiClient:
    """In-cluster service account, else the current kubeconfig (as kopf itself logs in)."""
    from kubernetes import config

    configuration = k8s.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        # KUBECONFIG read now, not at import time (the client's default is fixed when first imported).
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration)
    # a connection per API thread: with urllib3's default of 10, busy threads open and drop connections
    configuration.connection_pool_maxsize = API_WORKERS
    return k8s.ApiClient(configuration)


async def call_in_thread(fn: Callable[..., T], *args: Any, timeout: float, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` off the event loop: the client's request timeout plus an outer one a second
    longer, so neither a slow server nor a stuck socket holds a handler."""
    kwargs.setdefault("_request_timeout", timeout)
    call = asyncio.get_running_loop().run_in_executor(API_THREADS, functools.partial(fn, *args, **kwargs))
    return await asyncio.wait_for(call, timeout=timeout + 1)


class KubeClient:
    def __init__(self, api_client: k8s.ApiClient | None = None, timeout: float = 15.0) -> None:
        self.api_client = api_client or k8s.ApiClient()
        self.custom = k8s.CustomObjectsApi(self.api_client)
        self.core = k8s.CoreV1Api(self.api_client)
        self.apis = k8s.ApisApi(self.api_client)
        self.timeout = timeout
        self._discovery: tuple[float, dict[str, list[str]]] | None = None
        self._discovering: asyncio.Future[dict[str, list[str]]] | None = None

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await call_in_thread(fn, *args, timeout=self.timeout, **kwargs)
        except asyncio.TimeoutError:
            raise ApiError(504, "Timeout", f"{getattr(fn, '__name__', 'API call')} timed out after {self.timeout}s") from None
        except ApiException as e:
            body = (e.body or "")[:300] if isinstance(e.body, str) else str(e.reason)
            raise ApiError(e.status or 500, e.reason or "ApiError", body) from None

    # --- custom objects (ours by default; KubeVirt's with group/version) ---
    async def get(self, plural: str, namespace: str, name: str, *, group: str = c.GROUP,
                  version: str = c.VERSION) -> dict[str, Any] | None:
        try:
            return await self._call(self.custom.get_namespaced_custom_object, group, version, namespace, plural, name)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def list(self, plural: str, namespace: str, *, group: str = c.GROUP, version: str = c.VERSION) -> list[dict[str, Any]]:
        result = await self._call(self.custom.list_namespaced_custom_object, group, version, namespace, plural)
        return list(result.get("items") or [])

    async def create(self, plural: str, namespace: str, body: dict[str, Any], *, group: str = c.GROUP,
                     version: str = c.VERSION) -> dict[str, Any] | None:
        """The created object, or None when one of that name exists (409: the name is the lock)."""
        try:
            return await self._call(self.custom.create_namespaced_custom_object, group, version, namespace, plural, body)
        except ApiError as e:
            if e.status == 409:
                return None
            raise

    async def delete(self, plural: str, namespace: str, name: str, *, group: str = c.GROUP, version: str = c.VERSION,
                     propagation: str | None = None) -> bool:
        """False when it was already gone."""
        kwargs = {"propagation_policy": propagation} if propagation else {}
        try:
            await self._call(self.custom.delete_namespaced_custom_object, group, version, namespace, plural, name, **kwargs)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    async def patch(self, plural: str, namespace: str, name: str, patch: dict[str, Any], *, group: str = c.GROUP,
                    version: str = c.VERSION) -> dict[str, Any]:
        return await self._call(self.custom.patch_namespaced_custom_object, group, version, namespace, plural, name, patch,
                                _content_type=MERGE_PATCH)

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any],
                           resource_version: str | None = None) -> dict[str, Any]:
        """A merge patch of status; with `resource_version` it fails with 409 if the object moved on."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self._call(self.custom.patch_namespaced_custom_object_status, c.GROUP, c.VERSION, namespace, plural, name,
                                body, _content_type=MERGE_PATCH)

    async def served_groups(self) -> dict[str, list[str]]:
        """API discovery: group -> the versions it serves; one answer serves every caller for DISCOVERY_TTL seconds."""
        loop = asyncio.get_running_loop()
        if self._discovery is not None and loop.time() - self._discovery[0] < DISCOVERY_TTL:
            return self._discovery[1]
        if self._discovering is not None and self._discovering.get_loop() is loop and not self._discovering.done():
            return await asyncio.shield(self._discovering)   # one request in flight for all the zones asking
        future = self._discovering = loop.create_future()
        try:
            groups = await self._call(self.apis.get_api_versions)
        except Exception as e:
            future.set_exception(e)
            future.exception()   # the waiters see it; nobody else needs to
            raise
        except BaseException:
            future.cancel()
            raise
        served = {g.name: [v.version for v in (g.versions or [])] for g in (groups.groups or [])}
        self._discovery = (loop.time(), served)
        future.set_result(served)
        return served

    # --- Secrets: None for a missing one, or for a create/replace that lost to another writer ---
    def _plain(self, obj: Any) -> dict[str, Any]:
        return self.api_client.sanitize_for_serialization(obj)

    async def _plain_or_none(self, none_on: int, fn: Any, *args: Any) -> dict[str, Any] | None:
        """The call's object as plain JSON, or None when the API answers `none_on` (404 missing, 409 lost race)."""
        try:
            return self._plain(await self._call(fn, *args))
        except ApiError as e:
            if e.status == none_on:
                return None
            raise

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._plain_or_none(404, self.core.read_namespaced_secret, name, namespace)

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return await self._plain_or_none(409, self.core.create_namespaced_secret, namespace, body)

    async def replace_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT with the body's resourceVersion: None when someone else wrote the Secret first (409)."""
        return await self._plain_or_none(409, self.core.replace_namespaced_secret, body["metadata"]["name"], namespace, body)

    async def delete_secret(self, namespace: str, name: str) -> bool:
        try:
            await self._call(self.core.delete_namespaced_secret, name, namespace)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise

    # --- Events ---
    async def apply_configmap(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Creates the ConfigMap, or replaces its data and labels when it exists (merge patch: no read first)."""
        created = await self._plain_or_none(409, self.core.create_namespaced_config_map, namespace, body)
        if created is not None:
            return created
        return self._plain(await self._call(self.core.patch_namespaced_config_map, body["metadata"]["name"], namespace,
                                            {"metadata": {"labels": body["metadata"].get("labels") or {}}, "data": body["data"]}))

    async def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._plain(await self._call(self.core.create_namespaced_event, namespace, body))
