"""ImageStore: a secondary storage (an NFS export) of a zone (CloudStack's `image_store`)."""
from __future__ import annotations

import datetime
from typing import ClassVar, Literal

from pydantic import Field

from ssvm_operator.api.base import ApiModel, ObjectStatus, cel, immutable, item_rules, validations

# nfs://host[:port]/path: printable ASCII without spaces ([!-~]); the path's last character is not a slash
NFS_URL_RULE = "^nfs://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?/[!-~]*[!-.0-~]/?$"


class ImageStoreSpec(ApiModel):
    """Desired state of an ImageStore."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel(f"self.protocol != 'nfs' || self.url.matches('{NFS_URL_RULE}')",
            "url must be nfs://host/export/path for protocol nfs", ".url"),
        cel("self.protocol == 'nfs' || !has(self.mountOptions) || size(self.mountOptions) == 0",
            "mountOptions apply to nfs stores only", ".mountOptions"),
    )}

    zone_ref: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                          description="Name of the Zone (same namespace) this store belongs to.",
                          json_schema_extra=immutable("zoneRef"))
    protocol: Literal["nfs"] = Field(default="nfs", description="Storage protocol: nfs, the one SSVMs mount; object stores (s3, swift) "
                                                                "are refused until the operator serves them.")
    url: str = Field(min_length=1, max_length=2048, description="Location of the store, e.g. nfs://10.0.0.5/export/secondary.",
                     json_schema_extra=immutable("url"))
    nfs_version: Literal["3", "4", "4.0", "4.1", "4.2"] | None = Field(default=None, description="NFS version; the zone's when unset.")
    mount_options: list[str] = Field(
        default_factory=list, max_length=16,
        json_schema_extra=item_rules(pattern=r"^[a-z][a-z0-9_]*(=[A-Za-z0-9_.:/-]+)?$", maxLength=64),
        description="Extra NFS mount options (e.g. `timeo=600`); defaults are soft mounts with bounded timeouts.")
    read_only: bool = Field(default=False, description="A read-only store is mounted but does not count for SSVM capacity.")


class StoreMount(ApiModel):
    """The result of setting up this store on one SSVM."""

    ssvm: str = Field(description="Name of the SSVM.")
    result: Literal["Mounted", "Failed", "Pending"] = Field(description="Outcome of the setup action.")
    reason: str | None = Field(default=None, description="Why it failed (Unreachable, PermissionDenied, NfsVersion, NoNfsSupport...).")
    message: str | None = Field(default=None, max_length=4096, description="Details from the SSVM.")
    parent_dir: str | None = Field(default=None, description="Where the SSVM mounted the store.")
    last_update_time: datetime.datetime | None = Field(default=None, description="When this result was recorded.")


class ImageStoreStatus(ObjectStatus):
    """Observed state of an ImageStore."""

    parent_dir: str | None = Field(default=None, description="Mount point under /mnt/SecStorage the SSVMs use (the setup action's answer).")
    mounts: list[StoreMount] = Field(default_factory=list, max_length=200, description="Per-SSVM mount results.",
                                     json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["ssvm"]})


class ImageStore(ApiModel):
    KIND: ClassVar[str] = "ImageStore"
    # Every condition an ImageStore carries, and the one controller that writes it (docs/architecture.md).
    CONDITIONS: ClassVar[dict[str, str]] = {"ZoneFound": "zone", "URLUnique": "zone", "Mounted": "guest", "Ready": "guest"}

    spec: ImageStoreSpec
    status: ImageStoreStatus | None = None
