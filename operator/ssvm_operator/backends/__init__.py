"""VM backends: where SSVMs run (KubeVirt VirtualMachines, external hosts, in-memory for tests)."""
from .base import BackendError, BackendReadiness, NicInfo, ObservedVM, VMBackend, VMPhase, VMRequest

__all__ = ["BackendError", "BackendReadiness", "NicInfo", "ObservedVM", "VMBackend", "VMPhase", "VMRequest"]
