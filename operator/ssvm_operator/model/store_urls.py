"""Two ImageStores of one zone naming the same export: the older keeps it, the newer is `DuplicateURL`.

Mounting one export twice in a guest, under two store names, would count one store as two (one SSVM
too many) and let two records describe the same files; CloudStack refuses such a store when it is added.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ssvm_operator.model.views import CondSpec

URL_UNIQUE = "URLUnique"


def store_url_key(url: str) -> str:
    """The export a URL names, so `nfs://Host/export/` and `nfs://host/export` compare equal."""
    parts = urlsplit(url.strip())
    path = "/" + "/".join(p for p in parts.path.split("/") if p)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def duplicate_store_urls(stores: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each store whose URL an older live store of the list already names -> that older store's name."""
    live = [s for s in stores if not s["metadata"].get("deletionTimestamp") and (s.get("spec") or {}).get("url")]
    holders: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for store in sorted(live, key=lambda s: (s["metadata"].get("creationTimestamp") or "", s["metadata"]["name"])):
        key = store_url_key(store["spec"]["url"])
        name = store["metadata"]["name"]
        if key in holders:
            duplicates[name] = holders[key]
        else:
            holders[key] = name
    return duplicates


def url_unique_condition(name: str, zone: str, duplicates: Mapping[str, str]) -> CondSpec:
    """The zone controller's `URLUnique` condition of store `name`."""
    if name in duplicates:
        return CondSpec(URL_UNIQUE, "False", "DuplicateURL",
                        f"ImageStore {duplicates[name]} of zone {zone} already has this URL, so this store is not used; "
                        "delete one of the two.")
    return CondSpec(URL_UNIQUE, "True", "UniqueURL", f"No other image store of zone {zone} has this URL.")
