"""Template: a template or ISO kept on every writable image store of its zones (CloudStack's `vm_template`
with its `template_store_ref` rows as status)."""
from __future__ import annotations

import datetime
from typing import ClassVar, Literal

from pydantic import Field

from ssvm_operator.api.base import DNS_NAME_PATTERN, ApiModel, ObjectStatus, cel, immutable, item_rules, validations
from ssvm_operator.api.ssvm import TOKEN_PATTERN

Format = Literal["QCOW2", "RAW", "VHD", "OVA", "ISO"]
EntryState = Literal["Pending", "Downloading", "Ready", "Error", "Removing"]

# http(s)://host[:port]/path: printable ASCII without spaces or credentials (a user:password@ would end up in status).
URL_RULE = r"^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[!-~]*)?$"
# sha256:/sha512:/md5:<hex>, or CloudStack's {SHA-256}/{SHA-512}/{MD5}<hex>.
# Written without backslashes: CEL string literals know no escape for braces.
CHECKSUM_RULE = ("^((sha256:|[{]SHA-256[}])[0-9a-fA-F]{64}|(sha512:|[{]SHA-512[}])[0-9a-fA-F]{128}"
                 "|(md5:|[{]MD5[}])[0-9a-fA-F]{32})$")


class DownloadPolicy(ApiModel):
    """How a download is watched and retried."""

    stall_timeout_seconds: int = Field(default=120, ge=5, le=3600,
                                       description="A download that receives no byte for this long is aborted and retried.")
    max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts per store before it is Error (resumed ones included).")
    retry_base_seconds: int = Field(default=10, ge=1, le=3600, description="First retry delay; each further attempt waits twice as long.")


class TemplateSpec(ApiModel):
    """Desired state of a Template."""

    model_config = ApiModel.model_config | {"json_schema_extra": validations(
        cel("(has(self.zones) && size(self.zones) > 0) != (has(self.allZones) && self.allZones)",
            "set either zones (a list of Zone names) or allZones: true, not both", ".zones"),
    )}

    url: str = Field(min_length=8, max_length=2048, description="Where the image is downloaded from: an http or https URL.",
                     json_schema_extra=validations(
                         cel("self.startsWith('http://') || self.startsWith('https://')", "url must be an http:// or https:// URL"),
                         cel("!self.matches('^https?://[^/]*@')", "url must not carry credentials (user:password@host)"),
                         cel(f"self.matches('{URL_RULE}')", "url must be http(s)://host[:port]/path, without spaces"),
                         cel("self == oldSelf", "url is immutable: delete and recreate the Template to change it")))
    format: Format = Field(description="Image format: QCOW2, RAW, VHD, OVA, or ISO for an ISO image.",
                           json_schema_extra=immutable("format"))
    checksum: str | None = Field(default=None, max_length=140,
                                 description="Expected digest: `sha256:<hex>`, `sha512:<hex>`, `md5:<hex>`, or CloudStack's "
                                             "`{SHA-512}<hex>` form; the download is verified against it.",
                                 json_schema_extra=validations(cel(f"self.matches('{CHECKSUM_RULE}')",
                                                                   "checksum must be sha256:<64 hex>, sha512:<128 hex>, md5:<32 hex> "
                                                                   "or {SHA-256}/{SHA-512}/{MD5}<hex>")))
    zones: list[str] = Field(default_factory=list, max_length=64, json_schema_extra=item_rules(pattern=DNS_NAME_PATTERN, maxLength=63),
                             description="Zones (same namespace) whose image stores hold the template.")
    all_zones: bool = Field(default=False, description="Every zone of the namespace, present and future.")
    max_size_gib: int | None = Field(default=None, ge=1, le=65536, alias="maxSizeGiB",
                                     description="Refuse a download larger than this (TooLarge).")
    extractable: bool = Field(default=False, description="Publish a signed, expiring download link in status.")
    download: DownloadPolicy = Field(default_factory=DownloadPolicy, description="Stall timeout and retries.")
    retry_request: str | None = Field(default=None, pattern=TOKEN_PATTERN,
                                      description="Set to a new token to retry the stores in Error now; acknowledged in "
                                                  "status.observedRetryRequest.")


class StoreCopy(ApiModel):
    """The template on one image store (CloudStack's template_store_ref)."""

    store: str = Field(max_length=253, description="ImageStore name.")
    zone: str = Field(max_length=253, description="Zone of the store.")
    state: EntryState = Field(description="Pending, Downloading, Ready, Error, or Removing (the Template is being deleted).")
    percent: int | None = Field(default=None, ge=0, le=100, description="Download progress.")
    bytes: int | None = Field(default=None, ge=0, description="Bytes on the store so far.")
    total_bytes: int | None = Field(default=None, ge=0, description="Size the source announced.")
    install_path: str | None = Field(default=None, max_length=1024, description="Path of the image relative to the store's root.")
    ssvm: str | None = Field(default=None, max_length=253, description="The SSVM doing (or that did) the work.")
    source: str | None = Field(default=None, max_length=512,
                               description="Where the bytes come from: `url`, or `store:<name>` for a copy from a peer store.")
    attempts: int | None = Field(default=None, ge=0, description="Download attempts on this store.")
    reason: str | None = Field(default=None, max_length=128,
                               description="Why it is not Ready (NotFound, Forbidden, ChecksumMismatch, TooLarge, Stalled, NoSpace, "
                                           "Unreachable, InternalAddressRefused, NoSSVM, StoreNotMounted...).")
    message: str | None = Field(default=None, max_length=2048, description="Details of the last attempt.")
    retry_time: datetime.datetime | None = Field(default=None, description="When the next attempt is due.")
    checksum: str | None = Field(default=None, max_length=140, description="Digest of the file on the store (sha256 when none was given).")
    last_update_time: datetime.datetime | None = Field(default=None, description="When this entry last changed state.")


class DownloadLink(ApiModel):
    """A signed, expiring link to fetch the template back (CloudStack extractTemplate)."""

    url: str = Field(max_length=4096, description="The link; anyone holding it may download until it expires.")
    store: str = Field(max_length=253, description="The store it reads from.")
    expires: datetime.datetime = Field(description="When it stops working.")


class TemplateStatus(ObjectStatus):
    """Observed state of a Template."""

    stores: list[StoreCopy] = Field(default_factory=list, max_length=512, description="The template on each store it must be on.",
                                    json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["store"]})
    stores_ready: str | None = Field(default=None, max_length=32, description="Stores holding the template / stores it must be on.")
    progress: str | None = Field(default=None, max_length=16, description="Overall progress of the downloads, in percent.")
    size: int | None = Field(default=None, ge=0, description="Size of the image in bytes.")
    download_links: list[DownloadLink] = Field(default_factory=list, max_length=16, description="Signed links (extractable templates).")
    observed_retry_request: str | None = Field(default=None, description="The last retryRequest token acted on.")


class ImageTemplate(ApiModel):
    KIND: ClassVar[str] = "Template"
    # Every condition a Template carries, and the one controller that writes it (docs/architecture.md).
    CONDITIONS: ClassVar[dict[str, str]] = {"Ready": "template"}

    spec: TemplateSpec
    status: TemplateStatus | None = None
