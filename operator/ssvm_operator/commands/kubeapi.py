"""The day-2 commands' view of the cluster: the user's kubeconfig (or the pod's service account), one
namespace, the custom objects by kind, and a wait with a progress line."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ssvm_operator import constants as c

T = TypeVar("T")


class CommandError(Exception):
    """A failure the command reports as one line and exit code 1 (2 for usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig context's, else 'default')")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the operator (default: %(default)s)")


class Cluster:
    def __init__(self, args: argparse.Namespace) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            config.load_kube_config(config_file=args.kubeconfig or os.environ.get("KUBECONFIG") or None,
                                    client_configuration=configuration)
            _, context = config.list_kube_config_contexts(config_file=args.kubeconfig or os.environ.get("KUBECONFIG") or None)
            default_ns = (context or {}).get("context", {}).get("namespace") or "default"
        except (config.ConfigException, FileNotFoundError, TypeError):
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                raise CommandError("no kubeconfig found (set KUBECONFIG or --kubeconfig)", 2) from None
            default_ns = "default"
        self.api = client.ApiClient(configuration)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.namespace = args.namespace or default_ns
        self.timeout = args.timeout
        self.ApiException = client.ApiException

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, _request_timeout=15, **kwargs)
        except self.ApiException as e:
            if e.status == 404:
                raise CommandError(f"not found: {args[-1] if args else ''}", 2) from None
            raise CommandError(f"the API server said {e.status} {e.reason}") from None

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return self._call(self.custom.get_namespaced_custom_object, c.GROUP, c.VERSION, self.namespace, plural, name)

    def list(self, plural: str, all_namespaces: bool = False) -> list[dict[str, Any]]:
        if all_namespaces:
            return self._call(self.custom.list_cluster_custom_object, c.GROUP, c.VERSION, plural)["items"]
        return self._call(self.custom.list_namespaced_custom_object, c.GROUP, c.VERSION, self.namespace, plural)["items"]

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(self.custom.patch_namespaced_custom_object, c.GROUP, c.VERSION, self.namespace, plural, name, body,
                          _content_type="application/merge-patch+json")

    def events(self, names: set[str]) -> list[Any]:
        items = self._call(self.core.list_namespaced_event, self.namespace).items
        return sorted((e for e in items if e.involved_object.name in names),
                      key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)

    def wait(self, what: str, probe: Callable[[], tuple[bool, str]]) -> str:
        """Polls `probe` -> (done, progress text) until done, printing the text each time it changes."""
        deadline, last = time.monotonic() + self.timeout, None
        while True:
            done, text = probe()
            if text != last:
                print(f"  {text}", file=sys.stderr, flush=True)
                last = text
            if done:
                return text
            if time.monotonic() > deadline:
                raise CommandError(f"gave up after {self.timeout:g} s waiting for {what}; last: {text}")
            time.sleep(0.5)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((x for x in (obj.get("status") or {}).get("conditions") or [] if x.get("type") == type_), {})


def new_token(verb: str) -> str:
    return f"{verb}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{os.getpid() % 1000}"
