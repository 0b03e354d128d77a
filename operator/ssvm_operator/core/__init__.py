"""The reconcile core: pure, synchronous functions from observed state to plans (no kopf, no I/O).

Handlers build the views (`views.py`), call the planners and carry out what the plans say.
"""
from .capacity import CapacityPlan, CreateSSVM, DestroySSVM, StartSSVM, plan_zone_capacity
from .lifecycle import LifecyclePlan, VMAction, map_vm_state, plan_ssvm_lifecycle, ssvm_status_patch
from .naming import free_slot_names, slot_of, ssvm_name
from .readiness import ZoneReadiness, evaluate_zone_readiness, zone_status_patch
from .views import CondSpec, SSVMView, StoreView, ZoneView

__all__ = [
    "CapacityPlan", "CreateSSVM", "DestroySSVM", "StartSSVM", "plan_zone_capacity",
    "LifecyclePlan", "VMAction", "map_vm_state", "plan_ssvm_lifecycle", "ssvm_status_patch",
    "free_slot_names", "slot_of", "ssvm_name",
    "ZoneReadiness", "evaluate_zone_readiness", "zone_status_patch",
    "CondSpec", "SSVMView", "StoreView", "ZoneView",
]
