"""Reboot and recreate requests are carried out once per token, even while their acknowledgement is not stored."""
from __future__ import annotations

from ssvm_operator.controllers.ssvm.lifecycle import SSVMRequest
from ssvm_operator.controllers.ssvm.reconcile import SSVMReconciler
from ssvm_operator.kube.context import Kube
from ssvm_operator.kube.unseen import UnseenWrites
from ssvm_operator.kube.wakeups import Wakeups
from ssvm_operator.model.vm import NicInfo, ObservedVM, VMPhase

NS, NAME = "ns", "z1-ssvm-1"
RUNNING = ObservedVM(VMPhase.RUNNING, nics={"control": NicInfo("127.0.0.5")}, instance_id="i1")


def reconciler() -> SSVMReconciler:
    # only the unseen-writes record is used by planning: no client, writer or backends
    kube = Kube(client=None, status=None, unseen=UnseenWrites(), events=None, wakeups=Wakeups())  # type: ignore[arg-type]
    return SSVMReconciler(kube, backends=None, gate=None, requests=None)  # type: ignore[arg-type]


def kinds(plan) -> list[str]:
    return [a.kind for a in plan.actions]


def test_reboot_is_planned_once_then_only_acknowledged():
    r = reconciler()
    req = SSVMRequest(NAME, reboot_request="r1", state="Running")
    first = r.plan_once(NS, NAME, req, RUNNING, True, True)
    assert kinds(first) == ["reboot"] and first.ack_reboot == "r1"
    r.remember_acted(NS, NAME, first)
    again = r.plan_once(NS, NAME, req, RUNNING, True, True)  # the ack write was lost: still "pending" in the body
    assert "reboot" not in kinds(again) and again.ack_reboot == "r1"
    newer = r.plan_once(NS, NAME, SSVMRequest(NAME, reboot_request="r2", observed_reboot="r1", state="Running"),
                        RUNNING, True, True)
    assert kinds(newer) == ["reboot"] and newer.ack_reboot == "r2"


def test_recreate_is_planned_once_then_only_acknowledged():
    r = reconciler()
    req = SSVMRequest(NAME, recreate_request="c1", state="Running")
    first = r.plan_once(NS, NAME, req, RUNNING, True, True)
    assert "destroy" in kinds(first) and first.ack_recreate == "c1"
    r.remember_acted(NS, NAME, first)
    again = r.plan_once(NS, NAME, req, RUNNING, True, True)
    assert "destroy" not in kinds(again) and again.ack_recreate == "c1"
    r.kube.unseen.forget("SecondaryStorageVM", NS, NAME)
    assert "destroy" in kinds(r.plan_once(NS, NAME, req, RUNNING, True, True))
