"""Guest actions applied once per content across an operator restart in the middle of convergence,
counted in the simulated guests (the real agent), on both control planes."""
from __future__ import annotations

import collections
import threading

import pytest
from ssvm_operator.agent import cli as agent_cli

from .harness import OperatorThread, ready_ssvms, wait_for
from .test_guest_ops import _zone, gapi, guest_cluster  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


@pytest.fixture()
def applied(monkeypatch):
    """(guest, action, store URL) -> times the agent really applied it."""
    counts: collections.Counter = collections.Counter()
    first = threading.Event()
    for action in ("setup-store", "firewall", "vm-setup"):
        real = agent_cli.ACTIONS[action]

        def counting(ctx, payload, real=real, action=action):
            result = real(ctx, payload)
            counts[(ctx.paths.root.name, action, payload.get("url", ""))] += 1
            first.set()
            return result
        monkeypatch.setitem(agent_cli.ACTIONS, action, counting)
    counts.first = first
    return counts


def test_a_restart_mid_convergence_applies_each_content_once(gapi, guest_cluster, applied):  # noqa: F811
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0):
        wait_for("the first guest action applied", applied.first.is_set, timeout=90)
        gapi.store("s2", "z1")   # stores arrive while SSVMs are being set up
    gapi.store("s3", "z1")       # and while no operator runs
    with OperatorThread(gapi.ns, None, scan_interval=3.0):
        ssvms = wait_for("3 SSVMs Running, Ready and healthy", ready_ssvms(gapi, 3), timeout=120)
    # every SSVM ran every store's setup; nothing ran twice on one VM instance (the mesh may change firewalls)
    setups = {k: n for k, n in applied.items() if k[1] == "setup-store"}
    assert len(setups) == 9 and set(setups.values()) == {1}, setups
    assert all(n == 1 for k, n in applied.items() if k[1] == "vm-setup"), applied
    for s in ssvms.values():
        for key in ("setupStore", "vmSetup"):
            assert s["status"]["actions"][key]["attempts"] == 1, (s["metadata"]["name"], s["status"]["actions"][key])
