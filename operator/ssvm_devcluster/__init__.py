"""The embedded dev cluster: an emulated Kubernetes API (built on kmock) that kubectl, kopf and
the operator talk to over HTTP. See docs/devcluster.md.

Names are imported lazily: the CLI imports `ssvm_devcluster.cli` on every invocation.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DevCluster": "server", "DevClusterEmulator": "server", "serve": "server", "write_kubeconfig": "server",
    "ApiClient": "simulators", "Simulator": "simulators", "register": "simulators",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
