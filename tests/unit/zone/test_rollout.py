"""Rolling replacement planning: the template/offering hash, UpToDate, and one replacement per zone at a time."""
from __future__ import annotations

from ssvm_operator.model.vm import ObservedVM, VMPhase
from ssvm_operator.controllers.zone.rollout import plan_rollout
from ssvm_operator.model.spec_hash import OFFERING_CHANGED, RESTART_REQUIRED, TEMPLATE_CHANGED, material_hash, up_to_date_condition
from ssvm_operator.model.views import SSVMView, ZoneView

ZONE = {"secondaryStorage": {"template": {"kubevirt": {"containerDiskImage": "r/systemvm:4.19"}}, "offering": {"memoryMiB": 512}}}
NEW_TEMPLATE = {"secondaryStorage": {"template": {"kubevirt": {"containerDiskImage": "r/systemvm:4.20"}}, "offering": {"memoryMiB": 512}}}
Z = ZoneView(namespace="ns", name="z1")


def ssvm(n: int, **kw) -> SSVMView:
    base = {"name": f"z1-ssvm-{n}", "state": "Running", "ready": True, "up_to_date": "True"}
    return SSVMView(**{**base, **kw})


def outdated(n: int, reason: str = TEMPLATE_CHANGED, **kw) -> SSVMView:
    return ssvm(n, up_to_date="False", outdated_reason=reason, **kw)


HASHES = {f"z1-ssvm-{n}": material_hash(NEW_TEMPLATE, {}) for n in (1, 2, 3)}


def test_hash_parts_say_what_changed_and_ignore_defaults_and_ha():
    old = material_hash(ZONE, {})
    assert material_hash({"secondaryStorage": {**ZONE["secondaryStorage"], "offering": {}}}, {}) == old   # 512 is the default
    assert material_hash({"secondaryStorage": {**ZONE["secondaryStorage"], "offering": {"ha": False}}}, {}) == old
    new = material_hash(NEW_TEMPLATE, {})
    assert new.split(".")[0] != old.split(".")[0] and new.split(".")[1] == old.split(".")[1]
    assert up_to_date_condition(new, ObservedVM(VMPhase.RUNNING, spec_hash=old)).reason == TEMPLATE_CHANGED
    bigger = material_hash(ZONE, {"offering": {"memoryMiB": 1024}})
    assert up_to_date_condition(bigger, ObservedVM(VMPhase.RUNNING, spec_hash=old)).reason == OFFERING_CHANGED
    assert material_hash(ZONE, {"template": {"kubevirt": {"containerDiskImage": "r/systemvm:4.20"}}}) == new


def test_up_to_date_condition():
    h = material_hash(ZONE, {})
    assert up_to_date_condition(h, ObservedVM(VMPhase.RUNNING, spec_hash=h)).status == "True"
    assert up_to_date_condition(h, ObservedVM(VMPhase.ABSENT)).status == "Unknown"
    assert up_to_date_condition(h, ObservedVM(VMPhase.RUNNING)).reason == "SpecHashUnknown"   # a VM from an older operator
    cond = up_to_date_condition(h, ObservedVM(VMPhase.RUNNING, spec_hash=h, restart_required=True))
    assert (cond.status, cond.reason) == ("False", RESTART_REQUIRED)


def test_one_at_a_time_lowest_slot_first():
    plan = plan_rollout(Z, [outdated(1), outdated(2), outdated(3)], HASHES, ready=True)
    assert plan.replace is not None and plan.replace.name == "z1-ssvm-1" and plan.replace.action == "recreate"
    assert plan.replace.token == f"upgrade-{HASHES['z1-ssvm-1']}" and len(plan.replace.token) <= 63
    assert (plan.condition.status, plan.condition.reason) == ("False", "RollingUpdate")
    assert "0 of 3" in plan.condition.message


def test_waits_while_the_replaced_one_is_not_ready():
    token = f"upgrade-{HASHES['z1-ssvm-1']}"
    busy = ssvm(1, state="Creating", ready=False, upgrading=token, observed_recreate=token)
    plan = plan_rollout(Z, [busy, outdated(2), outdated(3)], HASHES, ready=True)
    assert plan.replace is None and plan.finished == ()
    assert "replacing z1-ssvm-1" in plan.condition.message
    issued = ssvm(1, upgrading=token)   # issued, not yet acted on: still busy even though Ready
    assert plan_rollout(Z, [issued, outdated(2), outdated(3)], HASHES, ready=True).replace is None


def test_finished_one_is_released_and_the_next_goes():
    token = f"upgrade-{HASHES['z1-ssvm-1']}"
    done = ssvm(1, upgrading=token, observed_recreate=token)
    plan = plan_rollout(Z, [done, outdated(2), outdated(3)], HASHES, ready=True)
    assert plan.finished == ("z1-ssvm-1",)
    assert plan.replace is not None and plan.replace.name == "z1-ssvm-2"
    assert "1 of 3" in plan.condition.message


def test_waits_while_another_ssvm_is_not_ready():
    plan = plan_rollout(Z, [outdated(1), ssvm(2, state="Starting", ready=False), outdated(3)], HASHES, ready=True)
    assert plan.replace is None
    assert "waiting for z1-ssvm-2" in plan.condition.message


def test_an_outdated_ssvm_that_is_down_goes_first():
    plan = plan_rollout(Z, [outdated(1), outdated(2, state="Error", ready=False)], HASHES, ready=True)
    assert plan.replace is not None and plan.replace.name == "z1-ssvm-2"


def test_nothing_when_hashes_match():
    plan = plan_rollout(Z, [ssvm(1), ssvm(2), ssvm(3, up_to_date="Unknown")], HASHES, ready=True)
    assert plan.empty
    assert (plan.condition.status, plan.condition.reason) == ("True", "UpToDate")


def test_override_on_one_ssvm_replaces_only_it():
    plan = plan_rollout(Z, [ssvm(1), outdated(2, OFFERING_CHANGED), ssvm(3)], HASHES, ready=True)
    assert plan.replace is not None and (plan.replace.name, plan.replace.reason) == ("z1-ssvm-2", OFFERING_CHANGED)
    token = plan.replace.token
    after = plan_rollout(Z, [ssvm(1), ssvm(2, upgrading=token, observed_recreate=token), ssvm(3)], HASHES, ready=True)
    assert after.finished == ("z1-ssvm-2",) and after.replace is None and after.condition.status == "True"


def test_restart_required_reboots_instead():
    plan = plan_rollout(Z, [outdated(1, RESTART_REQUIRED)], HASHES, ready=True)
    assert plan.replace is not None and plan.replace.action == "reboot" and plan.replace.token.startswith("restart-")


def test_paused_in_a_disabled_or_unready_zone():
    for zone, ready in ((ZoneView(namespace="ns", name="z1", enabled=False), True), (Z, False)):
        plan = plan_rollout(zone, [outdated(1)], HASHES, ready=ready)
        assert plan.replace is None and plan.condition.reason == "RollingUpdatePaused"


def test_stopped_ssvms_do_not_block_and_are_replaced_stopped():
    stopped = outdated(2, state="Stopped", ready=False, desired_state="Stopped")
    plan = plan_rollout(Z, [ssvm(1), stopped], HASHES, ready=True)
    assert plan.replace is not None and plan.replace.name == "z1-ssvm-2"
    token = plan.replace.token
    done = ssvm(2, state="Stopped", ready=False, desired_state="Stopped", upgrading=token, observed_recreate=token)
    assert plan_rollout(Z, [ssvm(1), done], HASHES, ready=True).finished == ("z1-ssvm-2",)
