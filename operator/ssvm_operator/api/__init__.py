"""The API of ssvm.io/v1alpha1: pydantic models are the single source of the CRDs."""
from .imagestore import ImageStore, ImageStoreSpec, ImageStoreStatus
from .ssvm import SecondaryStorageVM, SecondaryStorageVMSpec, SecondaryStorageVMStatus
from .zone import Zone, ZoneSpec, ZoneStatus

__all__ = [
    "Zone", "ZoneSpec", "ZoneStatus",
    "ImageStore", "ImageStoreSpec", "ImageStoreStatus",
    "SecondaryStorageVM", "SecondaryStorageVMSpec", "SecondaryStorageVMStatus",
]
