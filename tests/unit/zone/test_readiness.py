"""Zone readiness conditions (CloudStack's isZoneReady) and the zone status patch."""
from __future__ import annotations

import pytest

from ssvm_operator.model.vm import BackendReadiness
from ssvm_operator.controllers.zone.capacity import plan_zone_capacity
from ssvm_operator.controllers.zone.readiness import evaluate_zone_readiness, zone_status_patch
from ssvm_operator.model.views import SSVMView, StoreView, ZoneView

OK = BackendReadiness(True, True, "BackendReady")


def zone(**kw):
    return ZoneView(**{"namespace": "ns", "name": "z1", "template_configured": True, "generation": 2, **kw})


CASES = [
    ("all good", zone(), [StoreView("s")], OK, None, True, {}),
    ("disabled", zone(enabled=False), [StoreView("s")], OK, None, False, {"SecondaryStorageEnabled": "Disabled"}),
    ("no template configured", zone(template_configured=False), [StoreView("s")], OK, None, False,
     {"TemplateReady": "TemplateNotConfigured"}),
    ("template not ready in backend", zone(), [StoreView("s")], BackendReadiness(True, False, "TemplateMissing", "no image"), None, False,
     {"TemplateReady": "TemplateMissing"}),
    ("no store", zone(), [], OK, None, False, {"ImageStoreAvailable": "NoImageStore"}),
    ("only read-only stores", zone(), [StoreView("s", writable=False)], OK, None, False,
     {"ImageStoreAvailable": "NoWritableImageStore"}),
    ("backend cannot run VMs", zone(), [StoreView("s")], BackendReadiness(False, True, "BackendNotImplemented", "later"), None, False,
     {"BackendReady": "BackendNotImplemented"}),
    ("backend unreachable", zone(), [StoreView("s")], None, ("BackendUnreachable", "timeout"), False,
     {"BackendReady": "BackendUnreachable", "TemplateReady": "BackendUnreachable"}),
]


@pytest.mark.parametrize("title,z,stores,backend,err,ready,reasons", CASES, ids=[c[0] for c in CASES])
def test_readiness(title, z, stores, backend, err, ready, reasons):
    result = evaluate_zone_readiness(z, stores, backend, err)
    assert result.ready is ready
    by_type = {c.type: c for c in result.conditions}
    assert list(by_type) == ["SecondaryStorageEnabled", "TemplateReady", "ImageStoreAvailable", "BackendReady"]
    for type_, reason in reasons.items():
        assert by_type[type_].reason == reason and by_type[type_].status != "True"
    assert all(c.status == "True" for t, c in by_type.items() if t not in reasons)


def _patch(z, stores, ssvms, backend=OK, status=None, now="2025-01-01T00:00:00Z"):
    readiness = evaluate_zone_readiness(z, stores, backend)
    plan = plan_zone_capacity(z, stores, ssvms, ready=readiness.ready)
    return zone_status_patch(status, z, readiness, plan, ssvms, now)


def test_ready_when_every_wanted_ssvm_runs_and_no_churn():
    z, stores, ssvms = zone(), [StoreView("s")], [SSVMView("z1-ssvm-1", state="Running")]
    first = _patch(z, stores, ssvms)
    ready = {c["type"]: c for c in first["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "SSVMsRunning")
    assert (first["desiredSSVMs"], first["runningSSVMs"], first["imageStores"], first["observedGeneration"]) == (1, 1, 1, 2)
    assert _patch(z, stores, ssvms, status=first, now="2030-01-01T00:00:00Z") == {}


def test_progressing_then_ready_moves_only_ready_transition_time():
    z, stores = zone(), [StoreView("s")]
    first = _patch(z, stores, [])
    ready = {c["type"]: c for c in first["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "Progressing")
    second = _patch(z, stores, [SSVMView("z1-ssvm-1", state="Running")], status=first, now="2025-01-01T00:01:00Z")
    conds = {c["type"]: c for c in second["conditions"]}
    assert conds["Ready"]["lastTransitionTime"] == "2025-01-01T00:01:00Z"
    assert conds["BackendReady"]["lastTransitionTime"] == "2025-01-01T00:00:00Z"


def test_not_ready_zone_says_why_in_ready():
    ready = {c["type"]: c for c in _patch(zone(), [], [])["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "NoImageStore")


def test_disabled_zone_ready_once_everything_stopped():
    z = zone(enabled=False)
    running = {c["type"]: c for c in _patch(z, [StoreView("s")], [SSVMView("a", state="Running")])["conditions"]}["Ready"]
    stopped = {c["type"]: c for c in _patch(z, [StoreView("s")], [SSVMView("a", state="Stopped")])["conditions"]}["Ready"]
    assert (running["status"], running["reason"]) == ("False", "StoppingSSVMs")
    assert (stopped["status"], stopped["reason"]) == ("True", "SecondaryStorageDisabled")


def test_zone_view_from_body_reads_defaults_and_template():
    body = {"metadata": {"name": "z", "namespace": "n", "generation": 4},
            "spec": {"secondaryStorage": {"template": {"kubevirt": {"containerDiskImage": "img"}}}}}
    z = ZoneView.from_body(body)
    assert (z.enabled, z.backend, z.min_running, z.max_count, z.template_configured, z.generation) == (True, "kubevirt", 1, 5, True, 4)
    ext = ZoneView.from_body({"metadata": {"name": "z"}, "spec": {"secondaryStorage": {"backend": "external"}}})
    assert not ext.template_configured


def _ssvm(name, state="Running", reason="", message="", desired="Running"):
    return SSVMView(name, state=state, desired_state=desired, ready=not reason, ready_reason=reason, ready_message=message)


@pytest.mark.parametrize("ssvms,reason,message", [
    ([_ssvm(f"z1-ssvm-{i}", "Starting", "HostKeyMismatch", "10.0.0.9:3922 presented SHA256:x") for i in (1, 2, 3)],
     "SSVMsFailing", "3 of 3 SSVMs HostKeyMismatch; z1-ssvm-1: 10.0.0.9:3922 presented SHA256:x"),
    ([_ssvm("z1-ssvm-1", reason="CopyPasswordSecretNotFound", message="Nothing is pushed"), _ssvm("z1-ssvm-2"),
      _ssvm("z1-ssvm-3", "Starting", "HostKeyMismatch"), _ssvm("z1-ssvm-4", reason="CopyPasswordSecretNotFound")],
     "SSVMsFailing", "2 of 4 SSVMs CopyPasswordSecretNotFound, 1 of 4 SSVMs HostKeyMismatch; z1-ssvm-1: Nothing is pushed"),
    # booting and being configured is progress, not failure
    ([_ssvm("z1-ssvm-1", "Starting", "ConnectionRefused"), _ssvm("z1-ssvm-2", reason="StoresMountedPending")],
     "SSVMsRunning", None),
    # a stopped SSVM the user wants stopped is not failing
    ([_ssvm("z1-ssvm-1"), _ssvm("z1-ssvm-2", "Stopped", "Stopped", desired="Stopped")], "SSVMsRunning", None),
], ids=["all-host-key-mismatch", "two-reasons", "booting", "stopped-as-desired"])
def test_ready_rolls_up_the_ssvms_failures(ssvms, reason, message):
    z = zone(min_running=1)
    stores = [StoreView("s")]
    plan = plan_zone_capacity(z, stores, ssvms, ready=True)
    readiness = evaluate_zone_readiness(z, stores, OK)
    patch = zone_status_patch({}, z, readiness, plan, ssvms, now="t")
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    if reason == "SSVMsFailing":
        assert (ready["status"], ready["reason"], ready["message"]) == ("False", reason, message)
    else:
        assert ready["reason"] != "SSVMsFailing"


def test_a_template_problem_is_not_reported_as_the_backends_reason():
    """BackendReady=True with reason TemplateMissing read as a contradiction: the reason belongs to TemplateReady."""
    result = evaluate_zone_readiness(zone(), [StoreView("s")], BackendReadiness(True, False, "TemplateMissing", "no image"))
    by_type = {c.type: c for c in result.conditions}
    assert (by_type["TemplateReady"].status, by_type["TemplateReady"].reason) == ("False", "TemplateMissing")
    assert (by_type["BackendReady"].status, by_type["BackendReady"].reason) == ("True", "BackendReady")
