"""Reboot and recreate requests are carried out once per token, even while their acknowledgement is not stored."""
from __future__ import annotations

from ssvm_operator.model.vm import NicInfo, ObservedVM, VMPhase
from ssvm_operator.controllers.ssvm.lifecycle import SSVMRequest
from ssvm_operator.controllers.runtime import Runtime
from ssvm_operator.controllers.ssvm.controller import KIND, _plan_once, _remember_acted
from ssvm_operator.settings import OperatorConfig

KEY = (KIND, "ns", "z1-ssvm-1")
RUNNING = ObservedVM(VMPhase.RUNNING, nics={"control": NicInfo("127.0.0.5")}, instance_id="i1")


def runtime() -> Runtime:
    return Runtime(config=OperatorConfig(), api=None, backends=None)  # only the request memory is used here


def kinds(plan) -> list[str]:
    return [a.kind for a in plan.actions]


def test_reboot_is_planned_once_then_only_acknowledged():
    rt = runtime()
    req = SSVMRequest("z1-ssvm-1", reboot_request="r1", state="Running")
    first = _plan_once(rt, KEY, req, RUNNING, True, True)
    assert kinds(first) == ["reboot"] and first.ack_reboot == "r1"
    _remember_acted(rt, KEY, first)
    again = _plan_once(rt, KEY, req, RUNNING, True, True)  # the ack write was lost: still "pending" in the body
    assert "reboot" not in kinds(again) and again.ack_reboot == "r1"
    newer = _plan_once(rt, KEY, SSVMRequest("z1-ssvm-1", reboot_request="r2", observed_reboot="r1", state="Running"),
                       RUNNING, True, True)
    assert kinds(newer) == ["reboot"] and newer.ack_reboot == "r2"


def test_recreate_is_planned_once_then_only_acknowledged():
    rt = runtime()
    req = SSVMRequest("z1-ssvm-1", recreate_request="c1", state="Running")
    first = _plan_once(rt, KEY, req, RUNNING, True, True)
    assert "destroy" in kinds(first) and first.ack_recreate == "c1"
    _remember_acted(rt, KEY, first)
    again = _plan_once(rt, KEY, req, RUNNING, True, True)
    assert "destroy" not in kinds(again) and again.ack_recreate == "c1"
    rt.forget(*KEY)
    assert "destroy" in kinds(_plan_once(rt, KEY, req, RUNNING, True, True))
