"""A running VM whose SSH never answers is recreated after the start timeout, counted per VM instance."""
from __future__ import annotations

from ssvm_operator.controllers.ssvm.start_timeout import start_timeout_due


def test_due_after_timeout_of_continuous_failure_on_one_instance():
    since: dict = {}
    assert not start_timeout_due(since, "k", "i1", True, "ConnectionRefused", now=0, timeout=600)
    assert not start_timeout_due(since, "k", "i1", True, "Timeout", now=599, timeout=600)
    assert start_timeout_due(since, "k", "i1", True, "Timeout", now=600, timeout=600)
    assert not start_timeout_due(since, "k", "i1", True, "Timeout", now=601, timeout=600)  # counted afresh after firing


def test_a_passing_gate_or_a_new_instance_resets_the_count():
    since: dict = {}
    start_timeout_due(since, "k", "i1", True, "Timeout", now=0, timeout=600)
    start_timeout_due(since, "k", "i1", False, "", now=300, timeout=600)
    assert not start_timeout_due(since, "k", "i1", True, "Timeout", now=700, timeout=600)
    assert not start_timeout_due(since, "k", "i2", True, "Timeout", now=1400, timeout=600)  # rebooted: new count
    assert start_timeout_due(since, "k", "i2", True, "Timeout", now=2000, timeout=600)


def test_a_wrong_host_key_is_never_answered_with_a_new_vm():
    since: dict = {}
    start_timeout_due(since, "k", "i1", True, "HostKeyMismatch", now=0, timeout=60)
    assert not start_timeout_due(since, "k", "i1", True, "HostKeyMismatch", now=10_000, timeout=60)
