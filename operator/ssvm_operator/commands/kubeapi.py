"""What the day-2 commands share: the cluster options, errors as exit codes, and a wait with a progress line."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ssvm_operator.kube.user import UserApiError, UserClient

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
    """The user's client (kube/user.py) with the wait every verb needs; API failures become CommandErrors."""

    def __init__(self, args: argparse.Namespace) -> None:
        try:
            self.client = UserClient(args.kubeconfig, args.namespace)
        except UserApiError as e:
            raise CommandError(str(e), 2) from None
        self.namespace, self.timeout = self.client.namespace, args.timeout

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except UserApiError as e:
            raise CommandError(str(e), 2 if e.status == 404 else 1) from None

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return self._call(self.client.get, plural, name)

    def list(self, plural: str, all_namespaces: bool = False) -> list[dict[str, Any]]:
        return self._call(self.client.list, plural, all_namespaces)

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call(self.client.patch, plural, name, body)

    def events(self, names: set[str]) -> list[Any]:
        return self._call(self.client.events, names)

    def configmap_data(self, name: str) -> dict[str, str]:
        return self._call(self.client.configmap_data, name)

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
