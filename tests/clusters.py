"""The two control planes the tests run on, behind one face: the embedded dev cluster (an emulation) and
the real one (etcd, kube-apiserver and kube-controller-manager built from their Go modules).

A `Cluster` gives the admin's kubeconfig (for the test's own calls), the kubeconfig the operator logs
in with (on the real control plane the chart's ServiceAccount, authorised only by the chart's rendered
RBAC) and namespaces the operator may work in.
"""
from __future__ import annotations

import contextlib
import pathlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from tests.conftest import kubectl_run

ROOT = pathlib.Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"
CONTROL_PLANES = ("dev", "real")
# For a test of what only the dev cluster has (its request log, its CLI): `@dev_only`.
dev_only = pytest.mark.parametrize("cluster", ["dev"], indirect=True)
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@dataclass(frozen=True)
class Cluster:
    control_plane: str                  # "dev" or "real"
    url: str
    kubeconfig_path: pathlib.Path       # the admin's
    operator_kubeconfig_path: pathlib.Path

    @property
    def real(self) -> bool:
        return self.control_plane == "real"

    def kubectl(self, *args: str, input: str | None = None, check: bool = True):
        return kubectl_run(self.kubeconfig_path, *args, input=input, check=check)

    def namespace(self, prefix: str = "t", operator: bool = True, chart_sets: tuple[str, ...] = ()) -> str:
        """A new namespace; on the real control plane the chart's RBAC (rendered with `chart_sets`) lets the
        operator work in it."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.kubectl("create", "namespace", name)
        if self.real and operator:
            self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(chart_rbac(name, chart_sets)))
        return name


def chart_documents(namespace: str, sets: tuple[str, ...] = ()) -> list[dict]:
    """What `helm template` renders for an operator watching `namespace` as the control plane's operator account."""
    from ssvm_devcluster.controlplane import OPERATOR_ACCOUNT, OPERATOR_NAMESPACE
    from tests.chart.helm import CHART, helm

    args = [a for s in sets for a in ("--set", s)]
    out = helm("template", "ssvm", str(CHART), "--namespace", OPERATOR_NAMESPACE, "--set", f"serviceAccount.name={OPERATOR_ACCOUNT}",
               "--set", f"watch.namespaces={{{namespace}}}", *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def chart_rbac(namespace: str, sets: tuple[str, ...] = ()) -> list[dict]:
    """The ServiceAccount, Roles and bindings `helm template` renders for an operator watching `namespace`."""
    return [d for d in chart_documents(namespace, sets) if d["kind"] in RBAC_KINDS]


def dev_cluster(devcluster) -> Cluster:
    return Cluster("dev", devcluster.url, devcluster.kubeconfig_path, devcluster.kubeconfig_path)


def real_cluster(control_plane) -> Cluster:
    return Cluster("real", control_plane.url, control_plane.kubeconfig_path, control_plane.operator_kubeconfig_path)


def install_crds(kubeconfig: pathlib.Path, kubevirt: bool = True) -> None:
    """The project's CRDs (and KubeVirt's, CDI's and Multus'), applied and Established."""
    from ssvm_devcluster.kubevirt_crds import kubevirt_crds

    kubectl_run(kubeconfig, "apply", "-f", str(CRDS))
    if kubevirt:
        # server-side: no AlreadyExists race with a KubeVirt simulator registering the same CRDs
        kubectl_run(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(kubevirt_crds()))
    wait_established(kubeconfig)


def wait_established(kubeconfig: pathlib.Path, timeout: float = 60.0) -> None:
    """Every CRD Established (polled: `kubectl wait` fails on a CRD whose conditions are still null)."""
    import json

    from tests.waiting import wait_for

    def established() -> bool:
        crds = json.loads(kubectl_run(kubeconfig, "get", "crd", "-o", "json").stdout)["items"]
        return all(any(c["type"] == "Established" and c["status"] == "True" for c in (crd.get("status") or {}).get("conditions") or [])
                   for crd in crds)
    wait_for("every CRD Established", established, timeout)


@contextlib.contextmanager
def with_simulators(control_plane: str, simulators: list, workdir: pathlib.Path, real_control_plane=None) -> Iterator[Cluster]:
    """A cluster with `simulators` running against it: a dev cluster of its own, or the session's real
    control plane with the simulators in a thread (as separate controllers, as on a real cluster)."""
    if control_plane == "dev":
        from ssvm_devcluster import DevCluster

        with DevCluster(kubeconfig=workdir / "kubeconfig", simulators=simulators) as cluster:
            install_crds(cluster.kubeconfig_path)
            yield dev_cluster(cluster)
    else:
        from ssvm_devcluster.simulators import SimulatorsThread

        with SimulatorsThread(real_control_plane.kubeconfig_path, simulators):
            yield real_cluster(real_control_plane)
