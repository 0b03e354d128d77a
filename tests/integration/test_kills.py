"""Thirty SIGKILLs of the operator, at seeded random points, while twenty zones converge and change
(stores added and removed, reboots, recreates, a template change, a copy password rotation). Once an
operator runs undisturbed: every zone Ready with exactly the SSVMs its rules ask, one VM per SSVM and no
other, and every guest action applied once per content on each VM instance (counted in the simulated
guests, which run the real agent). Process kills need the operator as a process; the dev cluster only."""
from __future__ import annotations

import base64
import collections
import hashlib
import json
import random
import sys
import time

import pytest
from kubernetes import client as k8s
from ssvm_devcluster import DevCluster
from ssvm_devcluster.sim_guests import GuestSimConfig, GuestSimulator
from ssvm_devcluster.sim_kubevirt import KubeVirtSimConfig, KubeVirtSimulator
from ssvm_operator import constants as c
from ssvm_operator.agent import cli as agent_cli

from tests.clusters import install_crds
from tests.processes import start_with_kubeconfig, stop_process

from .harness import Api, condition, wait_for

pytestmark = pytest.mark.integration
SEED, KILLS, ZONES = 15, 30, 20
IMAGE = "registry.example/systemvm:4.19"


class Chaos:
    """The changes made between kills, and what each zone's rules then ask for."""

    def __init__(self, api: Api, rng: random.Random) -> None:
        self.api, self.rng = api, rng
        self.stores = {f"z{z}": [f"z{z}-s1"] for z in range(ZONES)}
        self.serial = 0
        self.requests: dict[tuple[str, str], str] = {}   # (SSVM, field) -> the last token asked for

    def add_store(self) -> None:
        zone = self.rng.choice(sorted(self.stores))
        self.serial += 1
        name = f"{zone}-a{self.serial}"
        self.api.store(name, zone)
        self.stores[zone].append(name)

    def remove_store(self) -> None:
        """From a zone with two or more: a zone left with no store is rightly not Ready (NoImageStore)."""
        candidates = sorted(z for z, s in self.stores.items() if len(s) > 1)
        if not candidates:
            return self.add_store()
        zone = self.rng.choice(candidates)
        name = self.stores[zone].pop(self.rng.randrange(len(self.stores[zone])))
        self.api.delete(c.IMAGESTORE_PLURAL, name)

    def _request(self, field: str) -> None:
        live = sorted(n for n, s in self.api.ssvms().items() if not s["metadata"].get("deletionTimestamp"))
        if not live:
            return
        self.serial += 1
        name = self.rng.choice(live)
        try:
            self.api.patch(c.SSVM_PLURAL, name, {"spec": {field: f"t{self.serial}"}})
            self.requests[(name, field)] = f"t{self.serial}"
        except k8s.ApiException as e:
            if e.status != 404:   # scaled in meanwhile: nothing to ask of it
                raise

    def reboot(self) -> None:
        self._request("rebootRequest")

    def recreate(self) -> None:
        self._request("recreateRequest")

    def change_template(self) -> None:
        self.api.patch(c.ZONE_PLURAL, "z3", {"spec": {"secondaryStorage": {"template": {"kubevirt": {"containerDiskImage": IMAGE + ".1"}}}}})

    def rotate_copy_password(self) -> None:
        self.api.core.patch_namespaced_secret("copy", self.api.ns, {"data": {"password": base64.b64encode(b"a-rotated-copy-password").decode()}})

    def wanted(self, zone: str) -> int:
        return len(self.stores[zone])   # one SSVM per store (minRunning 1); scale-in removes what no store asks for


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _operator(cluster, ns: str, log) -> object:
    return start_with_kubeconfig([sys.executable, "-m", "ssvm_operator.cli", "run", "-n", ns, "--liveness", "none",
                                  "--metrics-port", "0", "--scan-interval", "3"], cluster.kubeconfig_path, log, append=True)


def _settled(api: Api, chaos: Chaos, problems: list[str]):
    """A probe: (zones, SSVMs) once all is as the rules ask; meanwhile `problems` says what is not."""
    def check():
        zones = {z["metadata"]["name"]: z for z in api.list(c.ZONE_PLURAL)}
        ssvms = api.ssvms()
        by_zone = collections.Counter(s["spec"]["zoneRef"] for s in ssvms.values())
        problems[:] = [f"{name}: {condition(z, 'Ready').get('reason')} / {condition(z, 'SSVMsUpToDate').get('reason')}, "
                       f"{by_zone[name]} SSVMs for {chaos.wanted(name)} wanted"
                       for name, z in sorted(zones.items()) if condition(z, "Ready").get("status") != "True"
                       or condition(z, "SSVMsUpToDate").get("status") != "True" or by_zone[name] != chaos.wanted(name)]
        problems.extend([f"{name}: {(s.get('status') or {}).get('state')} {condition(s, 'Ready').get('reason')}"
                     f"{' deleting' if s['metadata'].get('deletionTimestamp') else ''}" for name, s in sorted(ssvms.items())
                     if (s.get("status") or {}).get("state") != "Running" or condition(s, "Ready").get("status") != "True"
                     or s["metadata"].get("deletionTimestamp")])
        return None if problems else (zones, ssvms)
    return check


def test_thirty_kills_while_twenty_zones_converge_and_change(tmp_path, monkeypatch):
    applied: dict[tuple[str, str, str], list[str]] = collections.defaultdict(list)   # (VM instance, action, slot) -> contents
    for action in ("setup-store", "vm-setup", "firewall"):
        real = agent_cli.ACTIONS[action]

        def counting(ctx, payload, real=real, action=action):
            digest = _digest(payload)
            result = real(ctx, payload)
            applied[(ctx.paths.root.name, action, payload.get("url", ""))].append(digest)
            return result
        monkeypatch.setitem(agent_cli.ACTIONS, action, counting)
    sims = [KubeVirtSimulator(KubeVirtSimConfig(boot_delay=0.2, control_range="127.82.0.0/16")),
            GuestSimulator(GuestSimConfig(state_root=str(tmp_path / "guests"), copy_port=0))]
    rng = random.Random(SEED)
    log = tmp_path / "operator.log"
    with DevCluster(kubeconfig=tmp_path / "kubeconfig", simulators=sims) as cluster:
        install_crds(cluster.kubeconfig_path)
        api = Api(str(cluster.kubeconfig_path), "default")
        api.core.create_namespaced_secret("default", k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="copy"),
                                                                  string_data={"password": "a-first-copy-password"}))
        for z in range(ZONES):
            api.create(c.ZONE_PLURAL, c.ZONE_KIND, f"z{z}", {"secondaryStorage": {
                "template": {"kubevirt": {"containerDiskImage": IMAGE}}, "scaleIn": True, "maxCount": 10,
                "copyPasswordSecretRef": {"name": "copy", "key": "password"}}})
            api.store(f"z{z}-s1", f"z{z}")
        chaos = Chaos(api, rng)
        changes = ([chaos.add_store] * 6 + [chaos.remove_store] * 4 + [chaos.reboot] * 3 + [chaos.recreate] * 3
                   + [chaos.change_template, chaos.rotate_copy_password])
        rng.shuffle(changes)
        kills = 0
        for k in range(KILLS):
            proc = _operator(cluster, api.ns, log)
            time.sleep(rng.uniform(0.7, 1.8))   # the operator's start takes about a second: most kills land mid-work
            if k < len(changes):
                changes[k]()
                time.sleep(rng.uniform(0.0, 0.4))
            proc.kill()
            proc.wait(10)
            kills += 1
        proc = _operator(cluster, api.ns, log)
        try:
            problems: list[str] = []
            try:
                zones, ssvms = wait_for("every zone Ready with exactly the SSVMs its rules ask", _settled(api, chaos, problems), timeout=240)
            except AssertionError:
                pytest.fail(f"not settled: {problems[:12]}; operator log tail:\n{log.read_text()[-3000:]}")
            vms = {v["metadata"]["name"] for v in api.custom.list_namespaced_custom_object("kubevirt.io", "v1", api.ns, "virtualmachines")["items"]}
        finally:
            stop_process(proc, grace=20)
    assert kills == KILLS
    assert len(zones) == ZONES
    assert vms == {s["status"]["backendRef"]["name"] for s in ssvms.values()} == set(ssvms), "one VM per SSVM, and no other"
    for (name, field), token in chaos.requests.items():
        if name in ssvms:
            observed = "observedRebootRequest" if field == "rebootRequest" else "observedRecreateRequest"
            assert ssvms[name]["status"].get(observed) == token, (name, field, ssvms[name]["status"].get(observed))
    z3 = [s for s in ssvms.values() if s["spec"]["zoneRef"] == "z3"]
    assert z3 and all(condition(s, "UpToDate").get("status") == "True" for s in z3), "z3 rolled to its new template"
    twice = {k: v for k, v in applied.items() if any(a == b for a, b in zip(v, v[1:]))}
    assert not twice, f"content applied twice in a row on one VM instance: {dict(list(twice.items())[:3])}"
    text = log.read_text()
    assert "a-first-copy-password" not in text and "a-rotated-copy-password" not in text
