"""kopf handler registration. Handlers are thin: they read objects, call the core, apply its plan."""
from __future__ import annotations

import kopf


def build_registry() -> kopf.OperatorRegistry:
    """A fresh registry holding every handler of the operator."""
    from ssvm_operator.handlers import guest, imagestore, initial_status, settings, ssvm, startup, zone

    registry = kopf.OperatorRegistry()
    for module in (settings, startup, initial_status, zone, imagestore, ssvm, guest):
        module.register(registry)
    return registry
