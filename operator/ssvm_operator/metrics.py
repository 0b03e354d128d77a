"""Prometheus metrics of the operator, served by `ssvm-operator run --metrics-port`.

Handlers call the small functions at the bottom (`record_event`, `observe_reconcile`,
`set_zone_counts`...); they act on one `Metrics` bound to prometheus_client's default registry,
the one `start_http_server` serves. Tests build their own `Metrics(CollectorRegistry())`.

Label values stay bounded: kinds, states, actions and results come from fixed lists (anything else is
`other`), reasons must look like condition reasons (CamelCase, at most 64 characters), and the
per-zone series are removed with `forget_zone` when a zone goes away.
"""
from __future__ import annotations

import contextlib
import re
import time
import typing
from typing import Any, Iterator, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from ssvm_operator import __version__
from ssvm_operator import constants as c
from ssvm_operator.agent.cli import ACTIONS as AGENT_ACTIONS
from ssvm_operator.api.ssvm import State
from ssvm_operator.api.template import EntryState

PREFIX = "ssvm_operator"
KINDS = (c.ZONE_KIND, c.IMAGESTORE_KIND, c.SSVM_KIND, c.TEMPLATE_KIND)
# CloudStack's VM lifecycle states, as SecondaryStorageVM.status.state holds them.
STATES = typing.get_args(State)
TEMPLATE_STATES = typing.get_args(EntryState)   # a template's state on one store
# Guest actions the operator pushes over SSH: the agent's own (`ssvm-agent <action>`).
ACTIONS = tuple(AGENT_ACTIONS)
EVENT_TYPES = ("Normal", "Warning")
OTHER = "other"
_REASON = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")

# Reconciles are dominated by API round-trips (tens of ms) and SSH pushes (seconds).
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
SSH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60)


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


def _reason(value: str) -> str:
    return value if _REASON.match(value or "") else OTHER


class Metrics:
    """Every metric of the operator, registered in one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self._zone_counts: dict[tuple[str, str], tuple] = {}   # what set_zone_counts last set, per zone
        zone = ["namespace", "zone"]
        self.build_info = Info(f"{PREFIX}_build", "Version of the running operator.", registry=registry)
        self.build_info.info({"version": __version__})
        self.ssvms = Gauge(f"{PREFIX}_ssvms", "SecondaryStorageVMs per zone and lifecycle state.",
                           [*zone, "state"], registry=registry)
        self.desired = Gauge(f"{PREFIX}_zone_desired_ssvms", "SSVMs the zone should have (the scaling rule's answer).",
                             zone, registry=registry)
        self.actual = Gauge(f"{PREFIX}_zone_actual_ssvms",
                            "SSVMs counted against the zone's capacity (Running, Starting, Migrating, Stopping, Stopped).",
                            zone, registry=registry)
        self.image_stores = Gauge(f"{PREFIX}_zone_image_stores", "Image stores per zone, by access.",
                                  [*zone, "access"], registry=registry)
        self.zone_ready = Gauge(f"{PREFIX}_zone_ready", "1 when the zone's Ready condition is True, else 0.",
                                zone, registry=registry)
        self.reconcile_duration = Histogram(f"{PREFIX}_reconcile_duration_seconds", "Time spent in one reconcile, per kind.",
                                            ["kind"], buckets=RECONCILE_BUCKETS, registry=registry)
        self.reconcile_errors = Counter(f"{PREFIX}_reconcile_errors_total", "Reconciles that raised, per kind.",
                                        ["kind"], registry=registry)
        self.action_pushes = Counter(f"{PREFIX}_guest_action_pushes_total", "Guest actions pushed to SSVMs over SSH.",
                                     ["action"], registry=registry)
        self.action_failures = Counter(f"{PREFIX}_guest_action_failures_total", "Guest action pushes that failed, per zone.",
                                       [*zone, "action", "reason"], registry=registry)
        self.ssh_duration = Histogram(f"{PREFIX}_ssh_command_duration_seconds",
                                      "Round-trip of one guest command over SSH (connect, run, read the answer).",
                                      ["action"], buckets=SSH_BUCKETS, registry=registry)
        self.health_checks = Counter(f"{PREFIX}_health_checks_total", "SSVM health checks, by result.",
                                     [*zone, "result"], registry=registry)
        self.health_check_failures = Counter(f"{PREFIX}_health_check_failures_total",
                                             "Failed items of health checks (dns, store, management, copyServer...).",
                                             ["check"], registry=registry)
        self.events = Counter(f"{PREFIX}_events_total", "Kubernetes Events the operator posted, by reason.",
                              ["reason", "type"], registry=registry)
        ssvm = [*zone, "ssvm"]
        self.ssvm_ready = Gauge(f"{PREFIX}_ssvm_ready", "1 when the SSVM's Ready condition is True, else 0.", ssvm, registry=registry)
        self.ssvm_state = Gauge(f"{PREFIX}_ssvm_state", "1 for the SSVM's lifecycle state, 0 for the others.", [*ssvm, "state"],
                                registry=registry)
        self.ssvm_healthy = Gauge(f"{PREFIX}_ssvm_healthy", "1 when the SSVM's last health check passed, else 0.", ssvm,
                                  registry=registry)
        self.ssvm_last_check = Gauge(f"{PREFIX}_ssvm_last_health_check_timestamp_seconds",
                                     "When the SSVM's last health check ran (Unix time), written or not.", ssvm, registry=registry)
        self.store_mounted = Gauge(f"{PREFIX}_imagestore_mounted_ssvms", "SSVMs that have the image store mounted.",
                                   [*zone, "imagestore"], registry=registry)
        template = ["namespace", "template"]
        self.template_stores = Gauge(f"{PREFIX}_template_stores", "Stores a template must be on, by its state there.",
                                     [*template, "state"], registry=registry)
        self.template_downloads = Gauge(f"{PREFIX}_template_downloads_in_progress", "Template downloads running on SSVMs.",
                                        ["namespace"], registry=registry)
        self.template_bytes = Counter(f"{PREFIX}_template_downloaded_bytes_total", "Bytes of templates written to image stores.",
                                      ["namespace"], registry=registry)
        self.template_failures = Counter(f"{PREFIX}_template_download_failures_total", "Template downloads that ended in Error, by reason.",
                                         ["namespace", "reason"], registry=registry)
        self._template_seen: dict[tuple[str, str], dict[str, tuple[str, int]]] = {}   # store -> (state, bytes) last set

    def set_zone_counts(self, namespace: str, zone: str, *, desired: int, actual: int, by_state: Mapping[str, int],
                        writable_image_stores: int, read_only_image_stores: int = 0, ready: bool | None = None) -> None:
        counts = (desired, actual, tuple(sorted(by_state.items())), writable_image_stores, read_only_image_stores, ready)
        if self._zone_counts.get((namespace, zone)) == counts:
            return   # a zone pass mostly changes nothing: labels() costs more than the pass's own work
        self._zone_counts[(namespace, zone)] = counts
        # every state is set, zero included, so a series never vanishes while the zone exists
        for state in STATES:
            self.ssvms.labels(namespace, zone, state).set(by_state.get(state, 0))
        unknown = sum(n for s, n in by_state.items() if s not in STATES)
        if unknown:
            self.ssvms.labels(namespace, zone, OTHER).set(unknown)
        self.desired.labels(namespace, zone).set(desired)
        self.actual.labels(namespace, zone).set(actual)
        self.image_stores.labels(namespace, zone, "writable").set(writable_image_stores)
        self.image_stores.labels(namespace, zone, "readonly").set(read_only_image_stores)
        if ready is not None:
            self.zone_ready.labels(namespace, zone).set(1 if ready else 0)

    def forget_zone(self, namespace: str, zone: str) -> None:
        """Drop a deleted zone's series (otherwise they would report its last values forever)."""
        self._zone_counts.pop((namespace, zone), None)
        for gauge, extra in ((self.ssvms, (*STATES, OTHER)), (self.image_stores, ("writable", "readonly"))):
            for value in extra:
                with contextlib.suppress(KeyError):
                    gauge.remove(namespace, zone, value)
        for gauge in (self.desired, self.actual, self.zone_ready):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, zone)
        for result in ("healthy", "unhealthy"):
            with contextlib.suppress(KeyError):
                self.health_checks.remove(namespace, zone, result)

    def set_ssvm(self, namespace: str, zone: str, ssvm: str, *, ready: bool | None = None, healthy: bool | None = None,
                 checked_at: float | None = None, state: str | None = None) -> None:
        if state is not None:   # every state set, so the series of one SSVM never appear or vanish as it moves
            for s in STATES:
                self.ssvm_state.labels(namespace, zone, ssvm, s).set(1 if s == state else 0)
        if ready is not None:
            self.ssvm_ready.labels(namespace, zone, ssvm).set(1 if ready else 0)
        if healthy is not None:
            self.ssvm_healthy.labels(namespace, zone, ssvm).set(1 if healthy else 0)
        if checked_at is not None:
            self.ssvm_last_check.labels(namespace, zone, ssvm).set(checked_at)

    def forget_ssvm(self, namespace: str, zone: str, ssvm: str) -> None:
        for gauge in (self.ssvm_ready, self.ssvm_healthy, self.ssvm_last_check):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, zone, ssvm)
        for s in STATES:
            with contextlib.suppress(KeyError):
                self.ssvm_state.remove(namespace, zone, ssvm, s)

    def set_template(self, namespace: str, template: str, entries: list[Mapping[str, Any]] | None) -> None:
        """Per-state store counts, bytes written since the last call, failures as they happen; None drops the template."""
        before = self._template_seen.pop((namespace, template), {})
        now = {e["store"]: (e.get("state", ""), int(e.get("bytes") or 0)) for e in entries or []}
        for store, (state, size) in now.items():
            old_state, old_size = before.get(store, ("", 0))
            # a Ready entry first seen (an operator restart) brought no bytes now; a download in progress did
            if size > old_size and (state == "Downloading" or state == "Ready" and old_state in ("Downloading", "Pending")):
                self.template_bytes.labels(namespace).inc(size - old_size)
            if state == "Error" and old_state != "Error":
                reason = next((e.get("reason") or "" for e in entries or [] if e["store"] == store), "")
                self.template_failures.labels(namespace, _reason(reason)).inc()
        for state in TEMPLATE_STATES:
            if entries is None:
                with contextlib.suppress(KeyError):
                    self.template_stores.remove(namespace, template, state)
            else:
                self.template_stores.labels(namespace, template, state).set(sum(1 for s, _ in now.values() if s == state))
        if entries is not None:
            self._template_seen[(namespace, template)] = now
        running = sum(1 for (ns, _), seen in self._template_seen.items() if ns == namespace for s, _ in seen.values() if s == "Downloading")
        self.template_downloads.labels(namespace).set(running)

    def set_store_mounted(self, namespace: str, zone: str, store: str, mounted: int | None) -> None:
        """SSVMs that mounted the store; None drops the series (the store is gone)."""
        if mounted is None:
            with contextlib.suppress(KeyError):
                self.store_mounted.remove(namespace, zone, store)
        else:
            self.store_mounted.labels(namespace, zone, store).set(mounted)

    @contextlib.contextmanager
    def observe_reconcile(self, kind: str) -> Iterator[None]:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}: one of {KINDS}")
        start = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            # kopf's temporary errors are still failed reconciles; cancellation at shutdown is not
            if not isinstance(exc, GeneratorExit) and type(exc).__name__ != "CancelledError":
                self.reconcile_errors.labels(kind).inc()
            raise
        finally:
            self.reconcile_duration.labels(kind).observe(time.perf_counter() - start)

    def record_action(self, action: str, ok: bool, reason: str = "", seconds: float | None = None, namespace: str = "",
                      zone: str = "") -> None:
        action = _bounded(action, ACTIONS)
        self.action_pushes.labels(action).inc()
        if not ok:
            self.action_failures.labels(namespace, zone, action, _reason(reason)).inc()
        if seconds is not None:
            self.ssh_duration.labels(action).observe(seconds)

    @contextlib.contextmanager
    def time_ssh(self, action: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ssh_duration.labels(_bounded(action, ACTIONS)).observe(time.perf_counter() - start)

    def record_health_check(self, namespace: str, zone: str, healthy: bool, failed_checks: tuple[str, ...] | list[str] = ()) -> None:
        self.health_checks.labels(namespace, zone, "healthy" if healthy else "unhealthy").inc()
        for check in failed_checks:
            # "store:<id>" names one store: the id would make the label unbounded
            name = check.split(":", 1)[0]
            self.health_check_failures.labels(name if re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$", name) else OTHER).inc()

    def record_event(self, reason: str, type_: str = "Normal") -> None:
        self.events.labels(_reason(reason), _bounded(type_, EVENT_TYPES)).inc()


# No `_created` series: one per counter and histogram child, they double the series count for no alert's use.
disable_created_metrics()
# Registered at import, as prometheus-client metrics usually are: every family shows on /metrics from the start.
_default = Metrics(REGISTRY)


def default() -> Metrics:
    """The process-wide metrics, in the registry `start_http_server` serves."""
    return _default


# The functions handlers call; each acts on the process-wide metrics.

def set_zone_counts(namespace: str, zone: str, *, desired: int, actual: int, by_state: Mapping[str, int],
                    writable_image_stores: int, read_only_image_stores: int = 0, ready: bool | None = None) -> None:
    default().set_zone_counts(namespace, zone, desired=desired, actual=actual, by_state=by_state,
                              writable_image_stores=writable_image_stores, read_only_image_stores=read_only_image_stores,
                              ready=ready)


def forget_zone(namespace: str, zone: str) -> None:
    default().forget_zone(namespace, zone)


def observe_reconcile(kind: str) -> contextlib.AbstractContextManager[None]:
    return default().observe_reconcile(kind)


def record_action(action: str, ok: bool, reason: str = "", seconds: float | None = None, namespace: str = "",
                  zone: str = "") -> None:
    default().record_action(action, ok, reason, seconds, namespace, zone)


def time_ssh(action: str) -> contextlib.AbstractContextManager[None]:
    return default().time_ssh(action)


def record_health_check(namespace: str, zone: str, healthy: bool, failed_checks: tuple[str, ...] | list[str] = ()) -> None:
    default().record_health_check(namespace, zone, healthy, failed_checks)


def record_event(reason: str, type_: str = "Normal") -> None:
    default().record_event(reason, type_)


def set_ssvm(namespace: str, zone: str, ssvm: str, *, ready: bool | None = None, healthy: bool | None = None,
             checked_at: float | None = None, state: str | None = None) -> None:
    default().set_ssvm(namespace, zone, ssvm, ready=ready, healthy=healthy, checked_at=checked_at, state=state)


def forget_ssvm(namespace: str, zone: str, ssvm: str) -> None:
    default().forget_ssvm(namespace, zone, ssvm)


def set_store_mounted(namespace: str, zone: str, store: str, mounted: int | None) -> None:
    default().set_store_mounted(namespace, zone, store, mounted)


def set_template(namespace: str, template: str, entries: list[Mapping[str, Any]] | None) -> None:
    default().set_template(namespace, template, entries)
