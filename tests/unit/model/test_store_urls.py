"""Two stores of one zone naming one export: the older keeps it, the newer is DuplicateURL, and its
Ready says so; the survivor is unaffected, and a deleted holder frees the URL."""
from __future__ import annotations

import pytest
from ssvm_operator.controllers.guest.status import store_status_patch
from ssvm_operator.controllers.zone.readiness import store_conditions_patch
from ssvm_operator.model.conditions import find_condition
from ssvm_operator.model.store_urls import duplicate_store_urls, store_url_key, url_unique_condition


def _store(name, url, created="2026-11-30T10:00:00Z", deleting=False):
    meta = {"name": name, "creationTimestamp": created, "generation": 1}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T11:00:00Z"
    return {"metadata": meta, "spec": {"url": url, "zoneRef": "z1"}}


@pytest.mark.parametrize("a,b,same", [
    ("nfs://10.0.0.5/export", "nfs://10.0.0.5/export/", True),
    ("nfs://NAS.example/export//a", "nfs://nas.example/export/a", True),
    ("nfs://10.0.0.5/export", "nfs://10.0.0.5/export2", False),
    ("nfs://10.0.0.5/Export", "nfs://10.0.0.5/export", False),   # paths are case-sensitive
    ("nfs://10.0.0.5:2049/export", "nfs://10.0.0.5/export", False),
])
def test_url_keys_compare_exports(a, b, same):
    assert (store_url_key(a) == store_url_key(b)) is same


def test_the_older_store_keeps_the_url():
    stores = [_store("b-new", "nfs://10.0.0.5/export/", "2026-11-30T10:05:00Z"),
              _store("a-old", "nfs://10.0.0.5/export", "2026-11-30T10:00:00Z"),
              _store("c", "nfs://10.0.0.6/export")]
    assert duplicate_store_urls(stores) == {"b-new": "a-old"}


def test_same_time_falls_back_to_the_name_and_a_deleting_holder_frees_the_url():
    stores = [_store("s2", "nfs://h/e"), _store("s1", "nfs://h/e"), _store("s3", "nfs://h/e")]
    assert duplicate_store_urls(stores) == {"s2": "s1", "s3": "s1"}
    stores[1] = _store("s1", "nfs://h/e", deleting=True)
    assert duplicate_store_urls(stores) == {"s3": "s2"}


def test_a_duplicate_is_ready_false_with_the_holders_name_and_no_write_when_unchanged():
    dup = _store("b", "nfs://h/e")
    cond = url_unique_condition("b", "z1", {"b": "a"})
    patch = store_conditions_patch({}, dup, cond)
    unique = find_condition(patch["conditions"], "URLUnique")
    assert (unique["status"], unique["reason"]) == ("False", "DuplicateURL") and "ImageStore a of zone z1" in unique["message"]
    assert store_conditions_patch({"conditions": patch["conditions"]}, dup, cond) == {}
    ready = find_condition(store_status_patch({"conditions": patch["conditions"]}, [], 1)["conditions"], "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DuplicateURL")


def test_a_unique_store_reads_as_its_mounts_say():
    cond = url_unique_condition("a", "z1", {"b": "a"})
    assert (cond.status, cond.reason) == ("True", "UniqueURL")
    mounts = [{"ssvm": "z1-ssvm-1", "result": "Mounted", "parentDir": "/mnt/x"}]
    status = {"conditions": store_conditions_patch({}, _store("a", "nfs://h/e"), cond)["conditions"]}
    ready = find_condition(store_status_patch(status, mounts, 1)["conditions"], "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Ready")
