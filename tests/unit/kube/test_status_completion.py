"""The first status write to an object initialises it, whichever controller makes it; the status
initialiser writes on its own only for an object no controller wrote to within its grace."""
from __future__ import annotations

import asyncio
import copy
from typing import Any

from ssvm_operator import constants as c
from ssvm_operator.api.imagestore import ImageStore
from ssvm_operator.api.zone import Zone
from ssvm_operator.controllers.status_init import StatusInitializer
from ssvm_operator.kube.context import Kube
from ssvm_operator.kube.status import StatusWriter
from ssvm_operator.kube.unseen import UnseenWrites
from ssvm_operator.kube.wakeups import Wakeups
from ssvm_operator.model.conditions import find_condition, set_condition


class FakeStatusApi:
    """Objects by (plural, name); every status patch is recorded and merged (top-level keys, as a merge patch does)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.rv = 0

    def add(self, plural: str, kind: str, name: str, generation: int = 1, finalizers: tuple[str, ...] = ()) -> dict[str, Any]:
        self.rv += 1
        body = {"kind": kind, "metadata": {"namespace": "ns", "name": name, "generation": generation, "resourceVersion": str(self.rv),
                                           "finalizers": list(finalizers)}, "spec": {}}
        self.objects[(plural, name)] = body
        return copy.deepcopy(body)

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((plural, name)))

    async def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any], rv: str | None = None) -> dict[str, Any]:
        body = self.objects[(plural, name)]
        self.patches.append((plural, name, copy.deepcopy(status)))
        self.rv += 1
        body["status"] = {**(body.get("status") or {}), **status}
        body["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(body)


def kube(api: FakeStatusApi) -> Kube:
    unseen = UnseenWrites()
    return Kube(client=api, status=StatusWriter(api, unseen), unseen=unseen, events=None, wakeups=Wakeups())  # type: ignore[arg-type]


def test_a_controllers_first_write_carries_every_condition_of_the_kind():
    api = FakeStatusApi()
    body = api.add(c.IMAGESTORE_PLURAL, c.IMAGESTORE_KIND, "s1", generation=3)
    written = asyncio.run(kube(api).status.write(c.IMAGESTORE_PLURAL, body, lambda st, b: {
        "conditions": set_condition(st.get("conditions") or [], "ZoneFound", "True", "ZoneFound", "Zone z1 exists.", 3)}))
    conds = written["conditions"]
    assert [x["type"] for x in conds][0] == "ZoneFound" and {x["type"] for x in conds} == set(ImageStore.CONDITIONS)
    assert all(x["reason"] == "Initializing" and x["status"] == "Unknown" for x in conds if x["type"] != "ZoneFound")
    assert written["observedGeneration"] == 3, "an ImageStore's generation is nobody else's: the first write observes it"
    assert len(api.patches) == 1


def test_a_write_leaves_a_zones_generation_to_the_zone_loop():
    api = FakeStatusApi()
    body = api.add(c.ZONE_PLURAL, c.ZONE_KIND, "z1", generation=2)
    body["status"] = {"observedGeneration": 1, "conditions": []}
    api.objects[(c.ZONE_PLURAL, "z1")]["status"] = copy.deepcopy(body["status"])
    written = asyncio.run(kube(api).status.write(c.ZONE_PLURAL, body, lambda st, b: {"activeSessions": 3}))
    assert "observedGeneration" not in written, "generation 2 is not acted on yet"
    assert {x["type"] for x in written["conditions"]} == set(Zone.CONDITIONS)


def _event(body: dict[str, Any]) -> dict[str, Any]:
    return {"type": None, "body": copy.deepcopy(body)}


def test_the_initialiser_stays_silent_when_a_controller_writes_within_the_grace():
    api = FakeStatusApi()

    async def scenario() -> None:
        k = kube(api)
        init = StatusInitializer(k, c.IMAGESTORE_KIND, c.IMAGESTORE_PLURAL, grace=0.2)
        body = api.add(c.IMAGESTORE_PLURAL, c.IMAGESTORE_KIND, "s1")
        await init.on_event(**_event(body))
        assert api.patches == [], "nothing is written before the grace ends"
        await k.status.write(c.IMAGESTORE_PLURAL, body, lambda st, b: {
            "conditions": set_condition(st.get("conditions") or [], "ZoneFound", "True", "ZoneFound", "", 1)})
        await init.on_event(**_event(api.objects[(c.IMAGESTORE_PLURAL, "s1")]))   # the watch shows the controller's write
        await asyncio.sleep(0.4)

    asyncio.run(scenario())
    assert len(api.patches) == 1, api.patches


def test_the_initialiser_writes_an_object_nobody_wrote_to_once_after_the_grace():
    api = FakeStatusApi()

    async def scenario() -> None:
        init = StatusInitializer(kube(api), c.ZONE_KIND, c.ZONE_PLURAL, grace=0.1)
        body = api.add(c.ZONE_PLURAL, c.ZONE_KIND, "z1", finalizers=(c.FINALIZER,))
        for _ in range(3):   # more events of the same object in the grace: still one write
            await init.on_event(**_event(body))
        await asyncio.sleep(0.3)
        await init.on_event(**_event(api.objects[(c.ZONE_PLURAL, "z1")]))
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert len(api.patches) == 1, api.patches
    conds = api.patches[0][2]["conditions"]
    assert {x["type"] for x in conds} == set(Zone.CONDITIONS)
    assert find_condition(conds, "Ready")["reason"] == "Initializing"


def test_the_initialiser_waits_for_kopfs_finalizer_on_a_zone():
    api = FakeStatusApi()

    async def scenario() -> None:
        init = StatusInitializer(kube(api), c.ZONE_KIND, c.ZONE_PLURAL, grace=0.05)
        await init.on_event(**_event(api.add(c.ZONE_PLURAL, c.ZONE_KIND, "z1")))
        await asyncio.sleep(0.2)
        assert api.patches == [], "a write before kopf's finalizer patch would make that patch fail"
        api.objects[(c.ZONE_PLURAL, "z1")]["metadata"]["finalizers"] = [c.FINALIZER]
        await init.on_event(**_event(api.objects[(c.ZONE_PLURAL, "z1")]))
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert len(api.patches) == 1
