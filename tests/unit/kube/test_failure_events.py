"""One Warning when Ready starts naming a failure, one Normal when it is Ready again, nothing in between."""
from __future__ import annotations

from ssvm_operator.kube.events import RECOVERED, FailureEvents
from ssvm_operator.model.views import is_ssvm_failure, is_zone_failure

KEY = ("ns", "z1-ssvm-1")


def ready(status, reason, message=""):
    return {"type": "Ready", "status": status, "reason": reason, "message": message}


def test_a_failure_is_announced_once_and_its_end_once(caplog):
    f = FailureEvents(is_ssvm_failure)
    f.seen(KEY, ready("False", "Creating"))
    assert f.changed(KEY, "z1-ssvm-1", ready("False", "Starting")) == []                  # progress
    (warning,) = f.changed(KEY, "z1-ssvm-1", ready("False", "HostKeyMismatch", "presented SHA256:x"))
    assert (warning.type, warning.reason, warning.on_zone) == ("Warning", "HostKeyMismatch", False)
    assert "presented SHA256:x" in warning.message
    assert f.changed(KEY, "z1-ssvm-1", ready("False", "HostKeyMismatch", "again")) == []  # the same failure: no flood
    assert f.changed(KEY, "z1-ssvm-1", ready("False", "Starting")) == []                  # recreated, booting
    (other,) = f.changed(KEY, "z1-ssvm-1", ready("False", "CopyPasswordSecretNotFound"))  # a new reason is news
    assert other.reason == "CopyPasswordSecretNotFound"
    (recovered,) = f.changed(KEY, "z1-ssvm-1", ready("True", "Running"))
    assert (recovered.type, recovered.reason) == ("Normal", RECOVERED) and "CopyPasswordSecretNotFound" in recovered.message
    assert f.changed(KEY, "z1-ssvm-1", ready("True", "Running")) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and "HostKeyMismatch" in warnings[0], "one WARNING line per new failure, none per pass"


def test_a_failure_seen_at_start_was_announced_before_the_restart():
    f = FailureEvents(is_ssvm_failure)
    f.seen(KEY, ready("False", "HostKeyMismatch"))
    assert f.changed(KEY, "z1-ssvm-1", ready("False", "HostKeyMismatch")) == []
    assert [e.reason for e in f.changed(KEY, "z1-ssvm-1", ready("True", "Running"))] == [RECOVERED]


def test_which_reasons_are_failures():
    assert is_ssvm_failure("HostKeyMismatch") and is_ssvm_failure("Error") and is_ssvm_failure("QuotaExceeded")
    assert not any(is_ssvm_failure(r) for r in ("", "Creating", "Starting", "Stopped", "StoresMountedPending", "ConnectionRefused"))
    assert is_zone_failure("SSVMsFailing") and is_zone_failure("TemplateNotConfigured") and is_zone_failure("CapacityLimited")
    assert not any(is_zone_failure(r) for r in ("Progressing", "StoppingSSVMs", "NoImageStore"))
