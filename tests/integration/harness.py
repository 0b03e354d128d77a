"""The operator in a thread (kopf.operator with a stop flag) against the dev cluster, and small API helpers."""
from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from ssvm_operator import constants as c
from ssvm_operator.settings import OperatorConfig

from tests.waiting import wait_for  # noqa: F401  (the integration tests import it from here)


def operator_key_secret(api: "Api") -> Any:
    """A fresh operator key put in the namespace's operator key Secret before the operator starts (the
    test then knows the key hosts must trust); returns the key pair."""
    from ssvm_operator.ssh.keys import generate_keypair
    operator = generate_keypair("ssvm-operator")
    api.core.create_namespaced_secret(api.ns, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="ssvm-operator-ssh"), type="kubernetes.io/ssh-auth",
        string_data={"ssh-privatekey": operator.private_openssh, "ssh-publickey": operator.public_openssh}))
    return operator


def start_external_hosts(operator_public: str, state_root: Any, loopback: str, count: int = 2) -> tuple[list[Any], list[dict[str, Any]]]:
    """`count` simulated hosts on `loopback`.<random>.10+ trusting the operator key: (guests, the zone's host entries)."""
    import random
    from ssvm_devcluster.simserver import start_simulated_guest
    from ssvm_operator.ssh.keys import generate_keypair
    net = random.randint(0, 254)
    guests, specs = [], []
    for i in range(count):
        key = generate_keypair(f"host-{i}")
        address = f"{loopback}.{net}.{i + 10}"
        guests.append(start_simulated_guest(address, key.private_openssh, operator_public, state_root / f"host-{i}",
                                            port=0, copy_port=0))
        specs.append({"name": f"host-{i}", "address": address, "port": guests[-1].port, "hostKey": key.public_openssh})
    return guests, specs


@contextlib.contextmanager
def guest_cluster_of(request: Any, tmp_path_factory: Any, control_range: str, **guest_config: Any) -> Iterator[tuple[Any, Any]]:
    """The KubeVirt simulator and simulated guests, as separate controllers, on the control plane `request.param`."""
    from ssvm_devcluster.sim_guests import GuestSimConfig, GuestSimulator
    from ssvm_devcluster.sim_kubevirt import KubeVirtSimConfig, KubeVirtSimulator
    from tests.clusters import with_simulators
    guests = GuestSimulator(GuestSimConfig(state_root=str(tmp_path_factory.mktemp("guests")), **guest_config))
    kubevirt = KubeVirtSimulator(KubeVirtSimConfig(boot_delay=0.2, control_range=control_range))
    real = request.getfixturevalue("real_control_plane") if request.param == "real" else None
    with with_simulators(request.param, [kubevirt, guests], tmp_path_factory.mktemp("guest-cluster"), real) as cluster:
        yield cluster, guests


class OperatorThread:
    def __init__(self, namespace: str, backend: Any, scan_interval: float = 5.0, **options: Any) -> None:
        self.namespace, self.backend, self.scan_interval = namespace, backend, scan_interval
        self.options = options   # more OperatorOptions (e.g. secrets_ttl)
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.thread = threading.Thread(target=self._main, name=f"operator-{namespace}", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        from ssvm_operator.controllers.registration import OperatorOptions, build_registry
        try:
            options = OperatorOptions(config=OperatorConfig(scan_interval=self.scan_interval), backend=self.backend, **self.options)
            asyncio.run(kopf.operator(
                registry=build_registry(options), namespaces=[self.namespace], standalone=True,
                stop_flag=self.stop_flag, ready_flag=self.ready_flag))
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def __enter__(self) -> OperatorThread:
        self.thread.start()
        assert self.ready_flag.wait(30), "operator did not start"
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop_flag.set()
        self.thread.join(30)
        if exc_type is None:   # a test that failed already says why; otherwise the operator's own end is checked
            self.check(stopped=True)

    def check(self, stopped: bool = False) -> None:
        """Fails the test if the operator crashed, or (once stopped) did not stop."""
        if self.error is not None:
            raise AssertionError(f"the operator crashed: {type(self.error).__name__}: {self.error}") from self.error
        if stopped and self.thread.is_alive():
            raise AssertionError("the operator did not stop within 30 s of its stop flag")
        if not stopped and not self.thread.is_alive():
            raise AssertionError("the operator stopped on its own during the test")


class Api:
    def __init__(self, kubeconfig: str, namespace: str) -> None:
        cfg = k8s.Configuration()
        k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        self.client = k8s.ApiClient(cfg)
        self.custom = k8s.CustomObjectsApi(self.client)
        self.core = k8s.CoreV1Api(self.client)
        self.ns = namespace

    def create(self, plural: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": c.API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        return self.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, plural, body)

    def list(self, plural: str) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, plural)["items"]

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, plural, name)
        except k8s.ApiException as e:
            if e.status == 404:
                return None
            raise

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, plural, name, patch,
                                                   _content_type="application/merge-patch+json")

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(c.GROUP, c.VERSION, self.ns, plural, name)

    def ssvms(self) -> dict[str, dict[str, Any]]:
        return {s["metadata"]["name"]: s for s in self.list(c.SSVM_PLURAL)}

    def events(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.core.list_namespaced_event(self.ns).items]

    def zone(self, name: str, **secondary: Any) -> dict[str, Any]:
        ss = {"template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.19"}}, **secondary}
        return self.create(c.ZONE_PLURAL, c.ZONE_KIND, name, {"secondaryStorage": ss})

    def store(self, name: str, zone: str, **spec: Any) -> dict[str, Any]:
        return self.create(c.IMAGESTORE_PLURAL, c.IMAGESTORE_KIND, name,
                           {"zoneRef": zone, "url": f"nfs://10.0.0.5/export/{name}", **spec})




def states(api: Api) -> dict[str, str | None]:
    return {name: (s.get("status") or {}).get("state") for name, s in api.ssvms().items()}


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next((x for x in ((obj or {}).get("status") or {}).get("conditions") or [] if x["type"] == type_), {})


def ready_ssvms(api: Api, n: int) -> Callable[[], dict[str, Any] | None]:
    """A probe for wait_for: the SSVMs when there are `n`, each Running, Ready and healthy."""
    def check() -> dict[str, Any] | None:
        ssvms = api.ssvms()
        ok = len(ssvms) == n and all(
            s.get("status", {}).get("state") == "Running" and condition(s, "Ready").get("status") == "True"
            and (s["status"].get("health") or {}).get("healthy") for s in ssvms.values())
        return ssvms if ok else None
    return check
