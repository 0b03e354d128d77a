"""kopf handler registration. Handlers are thin: they read objects, call the core, apply its plan."""
from __future__ import annotations

import kopf


def build_registry() -> kopf.OperatorRegistry:
    """A fresh registry holding every handler of the operator."""
    from . import initial_status, settings

    registry = kopf.OperatorRegistry()
    for module in (settings, initial_status):
        module.register(registry)
    return registry
