"""Day-2 operations on both control planes: a health check on request."""
from __future__ import annotations

import pytest
from ssvm_operator import constants as c

from .harness import OperatorThread, ready_ssvms, wait_for
from .test_guest_ops import _zone, gapi, guest_cluster  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def test_a_check_request_runs_a_check_now(gapi):  # noqa: F811
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0) as op:
        wait_for("1 SSVM Running, Ready and healthy", ready_ssvms(gapi, 1), timeout=90)
        gapi.patch(c.SSVM_PLURAL, "z1-ssvm-1", {"spec": {"checkRequest": "check-1"}})
        ssvm = wait_for("the check request acknowledged", lambda: (s := gapi.get(c.SSVM_PLURAL, "z1-ssvm-1"))
                        and s["status"].get("observedCheckRequest") == "check-1" and s, timeout=30)
        assert ssvm["status"]["health"]["healthy"] is True and ssvm["status"]["health"]["lastCheckTime"]
        op.check()
