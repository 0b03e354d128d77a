"""The operator under a flaky API server (the dev cluster's injected faults: conflicts, 500s, 429s, slow
answers, watch streams cut mid-way): three zones converge with no SSVM too many, every guest content
applied once, and no conflict logged as an ERROR or with a traceback. Faults are a dev cluster feature,
so this runs there only."""
from __future__ import annotations

import collections
import logging

import pytest
from ssvm_devcluster import DevCluster
from ssvm_devcluster.faults import FaultPlan
from ssvm_devcluster.sim_guests import GuestSimConfig, GuestSimulator
from ssvm_devcluster.sim_kubevirt import KubeVirtSimConfig, KubeVirtSimulator
from ssvm_operator.agent import cli as agent_cli

from tests.clusters import install_crds

from .harness import Api, OperatorThread, ready_ssvms, wait_for

pytestmark = pytest.mark.integration
IMAGE = {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}}


def test_zones_converge_under_injected_faults_applying_each_content_once(tmp_path, monkeypatch, caplog):
    applied: collections.Counter = collections.Counter()
    for action in ("setup-store", "vm-setup"):
        real = agent_cli.ACTIONS[action]

        def counting(ctx, payload, real=real, action=action):
            result = real(ctx, payload)
            applied[(ctx.paths.root.name, action, payload.get("url", ""))] += 1
            return result
        monkeypatch.setitem(agent_cli.ACTIONS, action, counting)
    sims = [KubeVirtSimulator(KubeVirtSimConfig(boot_delay=0.2, control_range="127.81.0.0/16")),
            GuestSimulator(GuestSimConfig(state_root=str(tmp_path / "guests"), copy_port=0))]
    faults = FaultPlan(conflict=0.1, error=0.05, throttle=0.05, slow=0.05, cutWatch=5, seed=2)
    caplog.set_level(logging.INFO)
    with DevCluster(kubeconfig=tmp_path / "kubeconfig", simulators=sims, faults=faults) as cluster:
        install_crds(cluster.kubeconfig_path)
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig_path))
        api = Api(str(cluster.kubeconfig_path), "default")
        api.client.user_agent = "kubectl/test"   # the test's own calls are spared; the operator's are not
        for z in range(3):
            api.create("zones", "Zone", f"z{z}", {"secondaryStorage": {"template": IMAGE}})
            api.store(f"z{z}-s1", f"z{z}")
            api.store(f"z{z}-s2", f"z{z}")
        with OperatorThread("default", None, scan_interval=3.0) as op:
            ssvms = wait_for("6 SSVMs Running, Ready and healthy", ready_ssvms(api, 6), timeout=180)
            op.check()
    assert sorted(ssvms) == [f"z{z}-ssvm-{i}" for z in range(3) for i in (1, 2)], "no SSVM too many"
    assert sum(faults.counts.values()) > 20 and all(faults.counts[k] > 0 for k in ("conflict", "error", "throttle", "slow", "cutWatch")), \
        dict(faults.counts)
    assert len([k for k in applied if k[1] == "setup-store"]) == 12 and set(applied.values()) == {1}, applied
    noisy = [r.getMessage() for r in caplog.records if r.name.startswith(("kopf", "ssvm_operator"))
             and (r.exc_info or (r.levelno >= logging.ERROR and "Conflict" in r.getMessage()))]
    assert not noisy, noisy[:3]
