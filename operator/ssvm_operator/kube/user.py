"""The API as the person at the keyboard sees it (the day-2 commands): their kubeconfig, synchronous
calls with a bounded timeout, one namespace; the operator's own calls go through kube/client.py."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from ssvm_operator import constants as c

T = TypeVar("T")
TIMEOUT = 15   # seconds per request


class UserApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class UserClient:
    def __init__(self, kubeconfig: str | None = None, namespace: str | None = None) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG") or None
        try:
            config.load_kube_config(config_file=path, client_configuration=configuration)
            _, context = config.list_kube_config_contexts(config_file=path)
            default_ns = (context or {}).get("context", {}).get("namespace") or "default"
        except (config.ConfigException, FileNotFoundError, TypeError):
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                raise UserApiError(0, "no kubeconfig found (set KUBECONFIG or --kubeconfig)") from None
            default_ns = "default"
        api = client.ApiClient(configuration)
        self.custom, self.core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        self.namespace = namespace or default_ns
        self._exception = client.ApiException

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, _request_timeout=TIMEOUT, **kwargs)
        except self._exception as e:
            what = f"{args[-2]}/{args[-1]}" if len(args) >= 2 and isinstance(args[-1], str) else "the request"
            raise UserApiError(e.status, f"not found: {what}" if e.status == 404 else f"the API server said {e.status} {e.reason}") from None

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return self._call(self.custom.get_namespaced_custom_object, c.GROUP, c.VERSION, self.namespace, plural, name)

    def list(self, plural: str, all_namespaces: bool = False) -> list[dict[str, Any]]:
        if all_namespaces:
            return self._call(self.custom.list_cluster_custom_object, c.GROUP, c.VERSION, plural)["items"]
        return self._call(self.custom.list_namespaced_custom_object, c.GROUP, c.VERSION, self.namespace, plural)["items"]

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(self.custom.patch_namespaced_custom_object, c.GROUP, c.VERSION, self.namespace, plural, name, body,
                          _content_type="application/merge-patch+json")

    def configmap_data(self, name: str) -> dict[str, str]:
        return dict(self._call(self.core.read_namespaced_config_map, name, self.namespace).data or {})

    def events(self, names: set[str]) -> list[Any]:
        items = self._call(self.core.list_namespaced_event, self.namespace).items
        return sorted((e for e in items if e.involved_object.name in names),
                      key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
