"""The KubeVirt backend's watch-fed view of VMs: newer wins, our own writes are not undone by a lagging
watch, deletions answer "absent", and what the backend dropped is read from the API again."""
from __future__ import annotations

from ssvm_operator.backends.kubevirt.cache import ABSENT, VMCache


def vm(rv: int, phase: str = "Running", name: str = "z1-ssvm-1") -> dict:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": str(rv)}, "status": {"printableStatus": phase}}


def test_unknown_objects_are_asked_for_and_watched_ones_are_answered():
    cache, woken = VMCache(), []
    cache.subscribe(lambda ns, name: woken.append(name))
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1") is None
    cache.seen("virtualmachines", "ADDED", vm(5, "Starting"))
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1")["status"]["printableStatus"] == "Starting"
    assert woken == ["z1-ssvm-1"], "a watch event wakes the SSVM's loop"


def test_our_own_write_is_read_from_the_api_until_the_watch_shows_it():
    cache = VMCache()
    cache.seen("virtualmachines", "ADDED", vm(5, "Running"))
    cache.wrote("virtualmachines", vm(9, "Stopped"))
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1") is None, "no watch event yet: ask the API"
    cache.seen("virtualmachines", "MODIFIED", vm(7, "Running"))
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1") is None, "a lagging event does not undo our write"
    cache.seen("virtualmachines", "DELETED", vm(8))
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1") is None, \
        "the deletion of an earlier incarnation does not hide the VM created after it"
    cache.seen("virtualmachines", "MODIFIED", vm(10, "Stopped"))
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1")["status"]["printableStatus"] == "Stopped"
    cache.seen("virtualmachines", "DELETED", vm(12))
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1") is ABSENT


def test_what_the_backend_dropped_is_read_again_and_older_events_stay_out():
    cache = VMCache()
    cache.seen("virtualmachineinstances", "ADDED", vm(20))
    cache.dropped("virtualmachineinstances", "ns", "z1-ssvm-1")   # a reboot deleted the instance
    assert cache.lookup("virtualmachineinstances", "ns", "z1-ssvm-1") is None
    cache.seen("virtualmachineinstances", "MODIFIED", vm(19, "Running"))
    assert cache.lookup("virtualmachineinstances", "ns", "z1-ssvm-1") is None, "an event older than the dropped object"
    cache.seen("virtualmachineinstances", "ADDED", vm(25, "Scheduling"))
    assert cache.lookup("virtualmachineinstances", "ns", "z1-ssvm-1")["status"]["printableStatus"] == "Scheduling"


def test_lookups_are_copies():
    cache = VMCache()
    cache.seen("virtualmachines", "ADDED", vm(1))
    cache.lookup("virtualmachines", "ns", "z1-ssvm-1")["status"]["printableStatus"] = "Changed"
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1")["status"]["printableStatus"] == "Running"


def test_answers_expire_so_a_lost_deletion_costs_a_request_not_a_stale_vm():
    now = [0.0]
    cache = VMCache(ttl=30.0, clock=lambda: now[0])
    cache.seen("virtualmachineinstances", "ADDED", vm(3, "Running"))
    now[0] = 29.0
    assert cache.lookup("virtualmachineinstances", "ns", "z1-ssvm-1") is not None
    now[0] = 31.0   # the watch restarted and missed the deletion: no answer older than the ttl
    assert cache.lookup("virtualmachineinstances", "ns", "z1-ssvm-1") is None
    cache.seen("virtualmachineinstances", "DELETED", vm(4))
    assert cache.lookup("virtualmachineinstances", "ns", "z1-ssvm-1") is ABSENT


def test_a_get_answer_is_kept_for_the_ttl_unless_something_came_while_it_was_on_its_way():
    now = [0.0]
    cache = VMCache(ttl=30, get_ttl=5, clock=lambda: now[0])
    since = cache.reading("virtualmachines", "ns", "z1-ssvm-1")
    cache.read("virtualmachines", "ns", "z1-ssvm-1", vm(5, "Running"), since)
    now[0] = 4
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1")["status"]["printableStatus"] == "Running"
    now[0] = 6
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1") is None, "older than the GET's ttl: ask again"
    since = cache.reading("virtualmachines", "ns", "z1-ssvm-1")
    cache.seen("virtualmachines", "MODIFIED", vm(6, "Stopped"))          # the watch shows a change meanwhile
    cache.read("virtualmachines", "ns", "z1-ssvm-1", None, since)       # a 404 sent before it: stale
    assert cache.lookup("virtualmachines", "ns", "z1-ssvm-1")["status"]["printableStatus"] == "Stopped"
    since = cache.reading("virtualmachineinstances", "ns", "z1-ssvm-1")
    cache.read("virtualmachineinstances", "ns", "z1-ssvm-1", None, since)
    assert cache.lookup("virtualmachineinstances", "ns", "z1-ssvm-1") is ABSENT, "a 404 answers 'absent' for the ttl"
    cache.seen("virtualmachineinstances", "ADDED", vm(7, "Scheduling"))
    assert cache.lookup("virtualmachineinstances", "ns", "z1-ssvm-1")["status"]["printableStatus"] == "Scheduling"
    since = cache.reading("virtualmachineinstances", "ns", "z1-ssvm-1")
    cache.dropped("virtualmachineinstances", "ns", "z1-ssvm-1")        # a reboot deletes it while a GET is out
    cache.read("virtualmachineinstances", "ns", "z1-ssvm-1", vm(7, "Running"), since)
    assert cache.lookup("virtualmachineinstances", "ns", "z1-ssvm-1") is None


def test_a_stream_that_goes_on_is_trusted_and_a_relisting_asks_again_for_what_it_did_not_show():
    now = [0.0]
    cache = VMCache(clock=lambda: now[0])
    plural = "virtualmachineinstances"
    cache.seen(plural, None, vm(3, name="a"))         # kopf's initial listing: events without a type
    cache.seen(plural, None, vm(4, name="b"))
    cache.seen(plural, "MODIFIED", vm(5, name="a"))
    now[0] = 200.0   # nothing changed for minutes: a resumed stream would have replayed any change
    assert cache.lookup(plural, "ns", "a") is not None and cache.lookup(plural, "ns", "b") is not None
    cache.seen(plural, None, vm(5, name="a"))         # a 410: kopf lists again, and "b" went meanwhile
    assert cache.lookup(plural, "ns", "b") is None, "not shown by the new listing: ask the API"
    assert cache.lookup(plural, "ns", "a")["metadata"]["resourceVersion"] == "5"
    assert cache.lookup("virtualmachines", "ns", "a") is None, "another kind's listing is its own"
    now[0] = 501.0
    assert cache.lookup(plural, "ns", "a") is None, "no answer is older than the backstop ttl"


def test_observing_the_same_two_versions_reads_them_once(monkeypatch):
    import asyncio

    from ssvm_operator.backends.kubevirt import backend as kv
    from ssvm_operator.kube.client import KubeClient

    class NoApi(KubeClient):
        def __init__(self):
            pass

        async def get(self, *a, **k):
            raise AssertionError("the cache answers")

    readings = []
    real = kv.observe_objects
    monkeypatch.setattr(kv, "observe_objects", lambda vm, vmi: readings.append(1) or real(vm, vmi))
    cache = VMCache()
    backend = kv.KubeVirtBackend(NoApi(), cache=cache)
    cache.seen("virtualmachines", "ADDED", vm(5, "Running"))
    cache.seen("virtualmachineinstances", "ADDED", {**vm(6), "status": {"phase": "Running"}})
    first = asyncio.run(backend.observe("ns", "z1-ssvm-1"))
    assert asyncio.run(backend.observe("ns", "z1-ssvm-1")) is first and len(readings) == 1
    cache.seen("virtualmachineinstances", "MODIFIED", {**vm(7), "status": {"phase": "Failed", "reason": "Crash"}})
    assert asyncio.run(backend.observe("ns", "z1-ssvm-1")).reason == "Crash" and len(readings) == 2


def test_what_is_kept_of_a_vm_is_what_the_backend_reads():
    from ssvm_operator.backends.kubevirt.cache import kept_of
    from ssvm_operator.backends.kubevirt.observe import observe_objects

    full_vm = {"metadata": {**vm(5)["metadata"], "uid": "u1", "annotations": {"a": "b"}, "managedFields": [{"manager": "x"}]},
               "spec": {"runStrategy": "Always", "template": {"spec": {
                   "domain": {"devices": {"disks": [{"name": "root"}] * 4}},
                   "volumes": [{"name": "root", "containerDisk": {"image": "ssvm:1"}},
                               {"name": "cloudinit", "cloudInitNoCloud": {"secretRef": {"name": "z1-ssvm-1-cloudinit"}}}]}}},
               "status": {"printableStatus": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    full_vmi = {"metadata": {**vm(6)["metadata"], "uid": "i1"}, "spec": {"domain": {"cpu": {"cores": 1}}},
                "status": {"phase": "Running", "interfaces": [{"name": "default", "ipAddress": "10.244.0.7"}]}}
    kept_vm, kept_vmi = kept_of(full_vm), kept_of(full_vmi)
    assert "managedFields" not in kept_vm["metadata"] and "domain" not in kept_vm["spec"]["template"]["spec"]
    assert kept_vm["spec"] == {"runStrategy": "Always", "template": {"spec": {"volumes": [full_vm["spec"]["template"]["spec"]["volumes"][1]]}}}
    assert "spec" not in kept_vmi
    assert observe_objects(kept_vm, kept_vmi) == observe_objects(full_vm, full_vmi)
