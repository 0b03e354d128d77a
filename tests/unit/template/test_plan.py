"""The template planner with tables, no cluster: which store gets the template, from which SSVM and source,
what a job's report does to an entry, retries, copies from a peer store, removal, and the Ready summary."""
from __future__ import annotations

import datetime

import pytest

from ssvm_operator.controllers.template.plan import SSVMView, StoreView, TemplateView, job_id, plan_template
from ssvm_operator.controllers.template.status import ready_condition, summary, template_status_patch

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
SPEC = {"url": "http://images.example/t.qcow2", "format": "QCOW2", "zones": ["z1"]}


def tmpl(zones=("z1",), retry=False, missing=()) -> TemplateView:
    return TemplateView("ns", "t", "uid-1", SPEC, tuple(zones), tuple(missing), retry)


def store(name, zone="z1", writable=True) -> StoreView:
    return StoreView(name, zone, f"nfs://10.0.0.5/export/{name}", writable)


def ssvm(name, zone="z1", mounted=("s1",), sessions=0, session_max=50, reachable=True, ip=None) -> SSVMView:
    return SSVMView(name, zone, reachable, frozenset(mounted), sessions, session_max, ip or f"192.0.2.{len(name)}")


def entry(store_name, state, zone="z1", **fields) -> dict:
    return {"store": store_name, "zone": zone, "state": state, "attempts": 1, **fields}


def plan(stores, ssvms, entries=(), jobs=None, listed=None, t=None):
    return plan_template(t or tmpl(), stores, ssvms, list(entries), jobs or {}, listed or {}, NOW)


@pytest.mark.parametrize("stores, ssvms, expected", [
    # every writable store of the zone gets an entry; a read-only store and another zone's store do not
    ([store("s1"), store("ro", writable=False), store("x", zone="z2")], [ssvm("a")], {"s1": "Downloading"}),
    # no SSVM has the store mounted: it waits, saying so
    ([store("s1")], [ssvm("a", mounted=())], {"s1": "Pending"}),
    # the SSVM is not reachable: same
    ([store("s1")], [ssvm("a", reachable=False)], {"s1": "Pending"}),
    # no free session slot: it waits for one
    ([store("s1")], [ssvm("a", sessions=50)], {"s1": "Pending"}),
])
def test_which_store_gets_a_download(stores, ssvms, expected):
    p = plan(stores, ssvms)
    assert {e["store"]: e["state"] for e in p.entries} == expected
    assert [s.store for s in p.starts] == [k for k, v in expected.items() if v == "Downloading"]


def test_the_reason_of_a_waiting_store_says_why():
    assert plan([store("s1")], [ssvm("a", mounted=())]).entries[0]["reason"] == "NoSSVM"
    assert plan([store("s1")], [ssvm("a", sessions=50)]).entries[0]["reason"] == "NoFreeSession"


def test_downloads_go_to_the_ssvm_with_the_most_free_slots_and_spend_them():
    stores = [store(f"s{i}") for i in range(4)]
    mounted = tuple(s.name for s in stores)
    p = plan(stores, [ssvm("a", mounted=mounted, sessions=47), ssvm("b", mounted=mounted, sessions=48, session_max=50)])
    # a has 3 free, b has 2: a, then a tie (2/2) goes to the later name, then a, then none left on either? b has 1, a has 1
    picked = [s.ssvm for s in p.starts]
    assert len(picked) == 4 and picked.count("a") == 2 and picked.count("b") == 2
    p = plan(stores, [ssvm("a", mounted=mounted, sessions=49)])
    assert [s.ssvm for s in p.starts] == ["a"], "one free slot: one download, the others wait"
    assert sorted(e["reason"] for e in p.entries if e["state"] == "Pending") == ["NoFreeSession"] * 3


@pytest.mark.parametrize("job, state, reason", [
    ({"state": "Downloading", "bytes": 50, "totalBytes": 100, "percent": 50, "attempts": 1}, "Downloading", None),
    ({"state": "Retrying", "bytes": 50, "attempts": 2, "reason": "Stalled", "message": "no data"}, "Downloading", "Stalled"),
    ({"state": "Ready", "bytes": 100, "size": 100, "checksum": "sha256:ab", "installPath": "template/tmpl/ns/t/t.qcow2"}, "Ready", None),
    ({"state": "Error", "reason": "ChecksumMismatch", "message": "bad"}, "Error", "ChecksumMismatch"),
    ({"state": "Interrupted"}, "Downloading", None),   # resumed at once on an SSVM that can
    (None, "Downloading", None),                        # the SSVM does not know the job: started again
])
def test_a_job_report_moves_the_entry(job, state, reason):
    p = plan([store("s1")], [ssvm("a")], [entry("s1", "Downloading", ssvm="a")], jobs={"s1": job})
    e = p.entries[0]
    assert (e["state"], e.get("reason")) == (state, reason), e
    restarted = job is None or job.get("state") == "Interrupted"
    assert bool(p.starts) == restarted


def test_an_entry_not_polled_is_left_as_it_is():
    e = entry("s1", "Downloading", ssvm="a", percent=30)
    assert plan([store("s1")], [ssvm("a")], [e]).entries[0] == e


def test_an_error_stays_until_a_retry_is_requested():
    failed = entry("s1", "Error", reason="NotFound", source="store:s0")
    assert plan([store("s1")], [ssvm("a")], [failed]).entries[0]["state"] == "Error"
    p = plan([store("s1")], [ssvm("a")], [failed], t=tmpl(retry=True))
    assert p.entries[0]["state"] == "Downloading" and p.starts[0].peer_store is None and p.entries[0]["attempts"] == 0


def test_a_source_gone_is_replaced_by_a_copy_on_the_same_ssvm_or_a_peer():
    ready = entry("s0", "Ready", bytes=10)
    failed = entry("s1", "Error", reason="NotFound", source="url")
    # the SSVM has both stores mounted: a local copy
    p = plan([store("s0"), store("s1")], [ssvm("a", mounted=("s0", "s1"))], [ready, failed])
    assert (p.starts[0].peer_store, p.starts[0].peer_ssvm) == ("s0", None)
    assert next(e for e in p.entries if e["store"] == "s1")["source"] == "store:s0"
    # another zone's store holds the copy: its SSVM's copy server serves it
    t = tmpl(zones=("z1", "z2"))
    p = plan([store("s0"), store("s3", zone="z2")], [ssvm("a", mounted=("s0",)), ssvm("b", zone="z2", mounted=("s3",))],
             [ready, entry("s3", "Error", zone="z2", reason="Unreachable", source="url")], t=t)
    assert (p.starts[0].ssvm, p.starts[0].peer_store, p.starts[0].peer_ssvm) == ("b", "s0", "a")


def test_a_copy_that_fails_is_not_retried_from_another_copy():
    p = plan([store("s0"), store("s1")], [ssvm("a", mounted=("s0", "s1"))],
             [entry("s0", "Ready"), entry("s1", "Error", reason="NotFound", source="store:s0")])
    assert not p.starts and next(e for e in p.entries if e["store"] == "s1")["state"] == "Error"


def test_a_checksum_error_is_not_mended_by_a_copy():
    p = plan([store("s0"), store("s1")], [ssvm("a", mounted=("s0", "s1"))],
             [entry("s0", "Ready"), entry("s1", "Error", reason="ChecksumMismatch", source="url")])
    assert not p.starts


def test_a_ready_image_found_missing_is_downloaded_again():
    p = plan([store("s1")], [ssvm("a")], [entry("s1", "Ready", bytes=10)], listed={"s1": False})
    assert p.entries[0]["state"] == "Downloading" and p.starts
    assert [r for r, _, _ in p.events] == ["TemplateMissing", "TemplateDownloadStarted"]
    assert plan([store("s1")], [ssvm("a")], [entry("s1", "Ready")], listed={"s1": True}).entries[0]["state"] == "Ready"


def test_a_store_leaving_the_template_has_its_files_removed_and_a_gone_store_is_forgotten():
    ready = entry("s1", "Ready", ssvm="a", bytes=10)
    p = plan([store("s1", writable=False)], [ssvm("a")], [ready])
    assert [(r.ssvm, r.store, r.job) for r in p.removes] == [("a", "s1", job_id("uid-1", "s1"))]
    assert p.entries[0]["state"] == "Removing"
    assert plan([], [ssvm("a")], [ready]).entries == [], "the store is gone: nothing to remove"
    assert plan([store("s1", writable=False)], [ssvm("a", mounted=())], [ready]).entries[0]["reason"] == "NoSSVM"


def test_a_retry_delay_is_respected():
    later = (NOW + datetime.timedelta(seconds=30)).isoformat()
    p = plan([store("s1")], [ssvm("a")], [entry("s1", "Pending", retryTime=later)])
    assert not p.starts and p.entries[0]["state"] == "Pending"


@pytest.mark.parametrize("entries, t, expected", [
    ([entry("s1", "Ready"), entry("s2", "Ready")], tmpl(), ("True", "Ready")),
    ([entry("s1", "Ready"), entry("s2", "Downloading", percent=40, ssvm="a")], tmpl(), ("False", "Downloading")),
    ([entry("s1", "Ready"), entry("s2", "Error", reason="NotFound", message="404")], tmpl(), ("False", "NotFound")),
    ([entry("s1", "Error", reason="TooLarge"), entry("s2", "Error", reason="NotFound")], tmpl(), ("False", "DownloadFailed")),
    ([entry("s1", "Pending", reason="NoSSVM")], tmpl(), ("False", "NoSSVM")),
    ([], tmpl(), ("False", "NoImageStore")),
    ([], tmpl(zones=()), ("False", "NoZone")),
    ([entry("s1", "Ready")], tmpl(missing=("zx",)), ("False", "ZoneNotFound")),
])
def test_ready_names_what_holds_it_back(entries, t, expected):
    status, reason, message = ready_condition(t, entries)
    assert (status, reason) == expected
    for e in entries:
        if e["state"] == "Error":
            assert e["store"] in message, "the message names the failing store"


def test_the_summary_reads_like_cloudstacks_template_list():
    entries = [entry("s1", "Ready", bytes=100, totalBytes=100), entry("s2", "Downloading", bytes=25, totalBytes=100),
               entry("s3", "Removing")]
    assert summary(entries) == {"storesReady": "1/2", "progress": "62%", "size": 100}
    assert summary([entry("s1", "Ready", bytes=7)]) == {"storesReady": "1/1", "progress": "100%", "size": 7}


def test_the_status_patch_moves_the_transition_time_only_when_ready_changes():
    entries = [entry("s1", "Downloading", percent=10, ssvm="a")]
    first = template_status_patch({}, tmpl(), entries, 1)
    status = {**first}
    entries[0]["percent"] = 20
    second = template_status_patch(status, tmpl(), entries, 1)
    assert "stores" in second and second["conditions"][0]["lastTransitionTime"] == first["conditions"][0]["lastTransitionTime"]
    assert template_status_patch({**status, **second}, tmpl(), entries, 1) == {}, "nothing new: nothing written"


def test_downloads_already_running_count_even_before_a_health_check_reports_them():
    running = entry("s1", "Downloading", ssvm="a")
    p = plan([store("s1"), store("s2")], [ssvm("a", mounted=("s1", "s2"), sessions=0, session_max=1)], [running],
             jobs={"s1": {"state": "Downloading", "bytes": 5}})
    assert not p.starts and next(e for e in p.entries if e["store"] == "s2")["reason"] == "NoFreeSession"
