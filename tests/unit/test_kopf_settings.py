"""kopf's per-event success line of the wake handlers is dropped; every other line of kopf stays."""
from __future__ import annotations

import logging

from ssvm_operator.controllers import ids
from ssvm_operator.controllers.kopf_settings import QuietWakes


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_wake_successes_are_dropped_and_the_rest_kept():
    quiet = QuietWakes()
    assert len(ids.WAKE_HANDLERS) == 11
    for handler in ids.WAKE_HANDLERS:
        assert not quiet.filter(_record(f"Handler '{handler}' succeeded."))
        assert quiet.filter(_record(f"Handler '{handler}' failed with an exception. Will retry.", logging.ERROR))
    assert quiet.filter(_record(f"Handler '{ids.ZONE_FINALIZER}' succeeded."))
    assert quiet.filter(_record(f"Daemon '{ids.ZONE_RECONCILE}' succeeded."))
