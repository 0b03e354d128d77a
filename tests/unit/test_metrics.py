"""The metrics module: names follow Prometheus conventions, values follow the calls, labels stay bounded."""
from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ssvm_operator import metrics as m


@pytest.fixture
def mx() -> m.Metrics:
    return m.Metrics(CollectorRegistry())


def value(mx: m.Metrics, name: str, **labels: str) -> float | None:
    return mx.registry.get_sample_value(name, labels)


def test_names_follow_prometheus_conventions(mx):
    families = list(text_string_to_metric_families(generate_latest(mx.registry).decode()))
    names = {f.name for f in families}
    assert names, "metrics are registered"
    for family in families:
        assert family.name.startswith("ssvm_operator_")
        if family.type == "counter":
            # the exposition adds _total to every sample of a counter
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), f"{family.name}: histogram of time must name its unit"
    for needed in ("ssvm_operator_ssvms", "ssvm_operator_zone_desired_ssvms", "ssvm_operator_zone_actual_ssvms",
                   "ssvm_operator_zone_image_stores", "ssvm_operator_reconcile_duration_seconds",
                   "ssvm_operator_reconcile_errors", "ssvm_operator_guest_action_pushes", "ssvm_operator_guest_action_failures",
                   "ssvm_operator_ssh_command_duration_seconds", "ssvm_operator_health_checks", "ssvm_operator_events",
                   "ssvm_operator_build_info"):
        assert needed in names, needed


def test_zone_counts_set_every_state_and_forget_removes_them(mx):
    mx.set_zone_counts("cloud", "zone1", desired=3, actual=2, by_state={"Running": 1, "Starting": 1, "Destroyed": 4},
                       writable_image_stores=2, read_only_image_stores=1, ready=False)
    assert value(mx, "ssvm_operator_ssvms", namespace="cloud", zone="zone1", state="Running") == 1
    assert value(mx, "ssvm_operator_ssvms", namespace="cloud", zone="zone1", state="Stopped") == 0
    assert value(mx, "ssvm_operator_ssvms", namespace="cloud", zone="zone1", state="Destroyed") == 4
    assert value(mx, "ssvm_operator_zone_desired_ssvms", namespace="cloud", zone="zone1") == 3
    assert value(mx, "ssvm_operator_zone_actual_ssvms", namespace="cloud", zone="zone1") == 2
    assert value(mx, "ssvm_operator_zone_image_stores", namespace="cloud", zone="zone1", access="writable") == 2
    assert value(mx, "ssvm_operator_zone_image_stores", namespace="cloud", zone="zone1", access="readonly") == 1
    assert value(mx, "ssvm_operator_zone_ready", namespace="cloud", zone="zone1") == 0
    mx.set_zone_counts("cloud", "zone1", desired=3, actual=3, by_state={"Running": 3}, writable_image_stores=2, ready=True)
    assert value(mx, "ssvm_operator_ssvms", namespace="cloud", zone="zone1", state="Starting") == 0
    assert value(mx, "ssvm_operator_zone_ready", namespace="cloud", zone="zone1") == 1
    mx.record_health_check("cloud", "zone1", True)
    mx.forget_zone("cloud", "zone1")
    text = generate_latest(mx.registry).decode()
    assert 'zone="zone1"' not in text


def test_unknown_state_is_counted_as_other(mx):
    mx.set_zone_counts("ns", "z", desired=1, actual=1, by_state={"Exploded": 2}, writable_image_stores=1)
    assert value(mx, "ssvm_operator_ssvms", namespace="ns", zone="z", state="other") == 2


def test_observe_reconcile_times_and_counts_errors(mx):
    with mx.observe_reconcile("Zone"):
        pass
    with pytest.raises(RuntimeError):
        with mx.observe_reconcile("Zone"):
            raise RuntimeError("boom")
    assert value(mx, "ssvm_operator_reconcile_duration_seconds_count", kind="Zone") == 2
    assert value(mx, "ssvm_operator_reconcile_errors_total", kind="Zone") == 1
    assert value(mx, "ssvm_operator_reconcile_errors_total", kind="ImageStore") is None


def test_observe_reconcile_works_around_awaits_and_ignores_cancellation(mx):
    async def handler():
        with mx.observe_reconcile("SecondaryStorageVM"):
            await asyncio.sleep(0)

    async def cancelled():
        with mx.observe_reconcile("SecondaryStorageVM"):
            raise asyncio.CancelledError

    asyncio.run(handler())
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    assert value(mx, "ssvm_operator_reconcile_duration_seconds_count", kind="SecondaryStorageVM") == 2
    assert value(mx, "ssvm_operator_reconcile_errors_total", kind="SecondaryStorageVM") is None


def test_observe_reconcile_refuses_an_unknown_kind(mx):
    with pytest.raises(ValueError):
        with mx.observe_reconcile("Pod"):
            pass


def test_actions_and_ssh_latency(mx):
    mx.record_action("setup-store", ok=True, seconds=0.3)
    mx.record_action("setup-store", ok=False, reason="PermissionDenied", seconds=1.2, namespace="cloud", zone="z1")
    mx.record_action("firewall", ok=False, reason="not a reason; rm -rf")
    mx.record_action("format-disk", ok=True)
    with mx.time_ssh("check"):
        pass
    assert value(mx, "ssvm_operator_guest_action_pushes_total", action="setup-store") == 2
    assert value(mx, "ssvm_operator_guest_action_failures_total", namespace="cloud", zone="z1", action="setup-store",
                 reason="PermissionDenied") == 1
    assert value(mx, "ssvm_operator_guest_action_failures_total", namespace="", zone="", action="firewall", reason="other") == 1
    assert value(mx, "ssvm_operator_guest_action_pushes_total", action="other") == 1
    assert value(mx, "ssvm_operator_ssh_command_duration_seconds_count", action="setup-store") == 2
    assert value(mx, "ssvm_operator_ssh_command_duration_seconds_bucket", action="setup-store", le="0.5") == 1
    assert value(mx, "ssvm_operator_ssh_command_duration_seconds_count", action="check") == 1


def test_action_list_matches_the_guest_agent():
    from ssvm_operator.agent.cli import ACTIONS

    assert set(m.ACTIONS) == set(ACTIONS)


def test_health_checks_and_failed_items_with_bounded_labels(mx):
    mx.record_health_check("ns", "z", False, ["dns", "store:imagestore-7f3a", "store:other-store", "bad label!"])
    mx.record_health_check("ns", "z", True)
    assert value(mx, "ssvm_operator_health_checks_total", namespace="ns", zone="z", result="unhealthy") == 1
    assert value(mx, "ssvm_operator_health_checks_total", namespace="ns", zone="z", result="healthy") == 1
    assert value(mx, "ssvm_operator_health_check_failures_total", check="store") == 2
    assert value(mx, "ssvm_operator_health_check_failures_total", check="dns") == 1
    assert value(mx, "ssvm_operator_health_check_failures_total", check="other") == 1


def test_events_by_reason_and_type(mx):
    mx.record_event("SSVMCreated")
    mx.record_event("SSVMCreated")
    mx.record_event("SSVMCreateFailed", "Warning")
    mx.record_event("lower case is no reason", "Weird")
    assert value(mx, "ssvm_operator_events_total", reason="SSVMCreated", type="Normal") == 2
    assert value(mx, "ssvm_operator_events_total", reason="SSVMCreateFailed", type="Warning") == 1
    assert value(mx, "ssvm_operator_events_total", reason="other", type="other") == 1


def test_module_functions_use_the_default_registry():
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("ssvm_operator_events_total", {"reason": "SSVMRebooted", "type": "Normal"}) or 0
    m.record_event("SSVMRebooted")
    assert REGISTRY.get_sample_value("ssvm_operator_events_total", {"reason": "SSVMRebooted", "type": "Normal"}) == before + 1
    assert m.default() is m.default()
    assert REGISTRY.get_sample_value("ssvm_operator_build_info", {"version": m.__version__}) == 1


def test_per_ssvm_series_and_their_removal():
    mx = m.Metrics(CollectorRegistry())
    mx.set_ssvm("cloud", "z1", "z1-ssvm-1", ready=True, healthy=False, checked_at=1700000000.0, state="Running")
    assert value(mx, "ssvm_operator_ssvm_state", namespace="cloud", zone="z1", ssvm="z1-ssvm-1", state="Running") == 1
    assert value(mx, "ssvm_operator_ssvm_state", namespace="cloud", zone="z1", ssvm="z1-ssvm-1", state="Stopped") == 0
    assert value(mx, "ssvm_operator_ssvm_healthy", namespace="cloud", zone="z1", ssvm="z1-ssvm-1") == 0
    mx.set_store_mounted("cloud", "z1", "s1", 2)
    assert value(mx, "ssvm_operator_imagestore_mounted_ssvms", namespace="cloud", zone="z1", imagestore="s1") == 2
    mx.forget_ssvm("cloud", "z1", "z1-ssvm-1")
    mx.set_store_mounted("cloud", "z1", "s1", None)
    text = generate_latest(mx.registry).decode()
    assert "z1-ssvm-1" not in text and 'imagestore="s1"' not in text
    assert "_created" not in text


def test_template_stores_bytes_and_failures_follow_the_entries_and_go_with_the_template(mx):
    def entry(store, state, size=0, reason=None):
        return {"store": store, "state": state, "bytes": size, "reason": reason}

    mx.set_template("cloud", "t1", [entry("s1", "Downloading", 100), entry("s2", "Pending")])
    mx.set_template("cloud", "t1", [entry("s1", "Downloading", 400), entry("s2", "Downloading", 50)])
    mx.set_template("cloud", "t1", [entry("s1", "Ready", 1000), entry("s2", "Error", 50, "NotFound")])
    assert value(mx, "ssvm_operator_template_stores", namespace="cloud", template="t1", state="Ready") == 1
    assert value(mx, "ssvm_operator_template_stores", namespace="cloud", template="t1", state="Error") == 1
    assert value(mx, "ssvm_operator_template_stores", namespace="cloud", template="t1", state="Downloading") == 0
    assert value(mx, "ssvm_operator_template_downloaded_bytes_total", namespace="cloud") == 1050
    assert value(mx, "ssvm_operator_template_download_failures_total", namespace="cloud", reason="NotFound") == 1
    mx.set_template("cloud", "t1", [entry("s1", "Ready", 1000), entry("s2", "Error", 50, "NotFound")])
    assert value(mx, "ssvm_operator_template_download_failures_total", namespace="cloud", reason="NotFound") == 1, "once per failure"
    assert value(mx, "ssvm_operator_template_downloads_in_progress", namespace="cloud") == 0
    mx.set_template("cloud", "t1", None)
    assert 'template="t1"' not in generate_latest(mx.registry).decode()
