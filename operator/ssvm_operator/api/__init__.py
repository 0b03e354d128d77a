"""The API of ssvm.io/v1alpha1: pydantic models are the single source of the CRDs."""
from ssvm_operator.api.imagestore import ImageStore, ImageStoreSpec, ImageStoreStatus
from ssvm_operator.api.ssvm import SecondaryStorageVM, SecondaryStorageVMSpec, SecondaryStorageVMStatus
from ssvm_operator.api.zone import Zone, ZoneSpec, ZoneStatus

__all__ = [
    "Zone", "ZoneSpec", "ZoneStatus",
    "ImageStore", "ImageStoreSpec", "ImageStoreStatus",
    "SecondaryStorageVM", "SecondaryStorageVMSpec", "SecondaryStorageVMStatus",
]
