"""Operator-wide kopf settings applied at start-up."""
from __future__ import annotations

import functools
import logging
from typing import Any

import kopf

from ssvm_operator import constants as c
from ssvm_operator.controllers import ids
from ssvm_operator.settings import OperatorConfig


class QuietWakes(logging.Filter):
    """Drops kopf's `Handler 'ssvm-wake' succeeded.`: one INFO line per watch event per wake handler, for nothing."""

    LINES = frozenset(f"Handler {h!r} succeeded." for h in ids.WAKE_HANDLERS)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.LINES


class NoDiffBase(kopf.DiffBaseStorage):
    """No handler compares an old spec with a new one (the loops read the current state), so kopf has nothing
    to remember: without this it writes a last-handled annotation on every new object and every spec change."""

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def configure(settings: kopf.OperatorSettings, config: OperatorConfig, **_: Any) -> None:
    objects = logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietWakes) for f in objects.filters):
        objects.addFilter(QuietWakes())
    # Progress in annotations: our CRD schemas are strict, so `status.kopf` would be pruned.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.persistence.finalizer = c.FINALIZER
    # Events come from the reporting controller ssvm-operator alone (kube/events.py), never from kopf's
    # poster: a handler's own failure is a log line and a condition, not a second kind of Event.
    settings.posting.enabled = False
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    settings.peering.lifetime = config.peering_lifetime


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # A plain OperatorRegistry has none of kopf's default login handlers: the pod's service account, else the kubeconfig.
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    kopf.on.startup(id=ids.STARTUP_SETTINGS, registry=registry)(functools.partial(configure, config=config))
    kopf.on.login(id=ids.LOGIN, registry=registry)(login)
