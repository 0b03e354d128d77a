"""Builds the shared Runtime at start-up: API client, backends (or the override), start gate."""
from __future__ import annotations

from typing import Any

import kopf

from ..backends.registry import BackendRegistry, backend_from_override
from ..settings import OperatorConfig
from . import ids
from .kubeapi import KubeApi, load_api_client
from .runtime import Runtime


def build_runtime(config: OperatorConfig, *, api_client: Any = None, backend: Any = None) -> Runtime:
    """`backend` (an instance) or `config.backend_override` (a spec like `memory:/tmp/vms.json`) serves every zone."""
    client = api_client or load_api_client()
    override = backend if backend is not None else backend_from_override(config.backend_override)
    runtime = Runtime(config=config, api=KubeApi(client), backends=BackendRegistry.default(client, override))
    if override is not None and hasattr(override, "subscribe"):
        # The backend tells when a VM changes phase: the SSVM's loop wakes instead of polling.
        override.subscribe(lambda namespace, name: runtime.wake("SecondaryStorageVM", namespace, name))
    return runtime


async def create_runtime(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("runtime") is None:
        config = memo.get("config") or OperatorConfig()
        memo["runtime"] = build_runtime(config, backend=memo.get("backend"))


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.startup(id=ids.STARTUP_RUNTIME, registry=registry)(create_runtime)
