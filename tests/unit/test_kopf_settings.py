"""How the operator sits in kopf: the per-event success line of the wake handlers is dropped (every other line
of kopf stays), and no per-event handler hops to a thread."""
from __future__ import annotations

import logging

from ssvm_operator.controllers import ids
from ssvm_operator.controllers.kopf_settings import QuietWakes


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_wake_successes_are_dropped_and_the_rest_kept():
    quiet = QuietWakes()
    assert len(ids.WAKE_HANDLERS) == 15
    for handler in ids.WAKE_HANDLERS:
        assert not quiet.filter(_record(f"Handler '{handler}' succeeded."))
        assert quiet.filter(_record(f"Handler '{handler}' failed with an exception. Will retry.", logging.ERROR))
    assert quiet.filter(_record(f"Handler '{ids.ZONE_FINALIZER}' succeeded."))
    assert quiet.filter(_record(f"Daemon '{ids.ZONE_RECONCILE}' succeeded."))


def test_every_handler_that_runs_per_event_runs_on_the_event_loop():
    """kopf runs a sync handler in a thread: a hop per event and per index, thousands a second at scale."""
    from kopf._core.actions.invocation import is_async_fn
    from kubernetes import client as k8s

    from ssvm_operator.controllers.registration import OperatorOptions, build_registry

    registry = build_registry(OperatorOptions(api_client=k8s.ApiClient()))
    per_event = [h for reg in (registry._indexing, registry._watching, registry._spawning, registry._changing)
                 for h in reg.get_all_handlers()]
    assert len(per_event) >= 20
    assert [h.id for h in per_event if not is_async_fn(h.fn)] == []
