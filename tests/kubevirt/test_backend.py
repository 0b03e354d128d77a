"""KubeVirtBackend against both control planes with the KubeVirt simulator: lifecycle and failure states."""
from __future__ import annotations

import dataclasses

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from ssvm_operator.backends.base import BackendError, VMBackend
from ssvm_operator.model.vm import VMPhase
from ssvm_operator.backends.kubevirt.backend import KubeVirtBackend
from ssvm_operator.backends.kubevirt.manifests import secret_name
from ssvm_operator.backends.kubevirt.userdata import AgentPayload
from ssvm_devcluster.sim_kubevirt import FAIL_ANNOTATION, FAILURE_STATES
from tests.kubevirt.helpers import admitted_zone_spec, example, make_request
from tests.kubevirt.waiting import await_for

AGENT = AgentPayload(pip_spec="ssvm-operator")


@pytest.fixture()
def backend(api_client) -> KubeVirtBackend:
    return KubeVirtBackend(api_client, agent=AGENT, timeout=10)


@pytest.fixture()
def make_ssvm(api_client, namespace):
    """Creates a SecondaryStorageVM object (the VM's owner) and returns the VMRequest for it."""
    custom = k8s.CustomObjectsApi(api_client)

    def make(name: str, zone: dict | None = None, running: bool = True):
        zone = zone or example("Zone", "zone1")
        body = {"apiVersion": "ssvm.io/v1alpha1", "kind": "SecondaryStorageVM", "metadata": {"name": name},
                "spec": {"zoneRef": zone["metadata"]["name"]}}
        ssvm = custom.create_namespaced_custom_object("ssvm.io", "v1alpha1", namespace, "secondarystoragevms", body)
        return make_request(zone, name=name, uid=ssvm["metadata"]["uid"], namespace=namespace, running=running)
    return make


async def _phase(backend, namespace, name, phase, *, other_than=None):
    async def probe():
        seen = await backend.observe(namespace, name)
        return seen if seen.phase is phase and (other_than is None or seen.instance_id != other_than) else None
    return await await_for(probe, f"{name} {phase.value}")


def test_backend_implements_the_protocol(backend):
    assert isinstance(backend, VMBackend)


async def test_readiness(backend, namespace):
    ready = await backend.readiness(namespace, "zone1", admitted_zone_spec(example("Zone", "zone1")))
    assert (ready.can_run_vms, ready.template_ready, ready.reason) == (True, True, "KubeVirtReady")
    zone = example("Zone", "zone1")
    del zone["spec"]["secondaryStorage"]["template"]
    missing = await backend.readiness(namespace, "zone1", admitted_zone_spec(zone))
    assert (missing.can_run_vms, missing.template_ready, missing.reason) == (True, False, "TemplateMissing")


async def test_lifecycle_ensure_stop_start_reboot_destroy(backend, make_ssvm, namespace, api_client):
    request = make_ssvm("zone1-ssvm-1")
    first = await backend.ensure(request)
    assert first.phase in (VMPhase.PROVISIONING, VMPhase.STARTING, VMPhase.RUNNING)
    running = await _phase(backend, namespace, request.name, VMPhase.RUNNING)
    assert running.nics["control"].ip.startswith("127.77.")
    assert running.nics["public"].ip.startswith("203.0.113.") and running.nics["private"].ip.startswith("10.1.0.")
    assert running.nics["storage"].ip and running.nics["public"].mac
    assert (running.backend_name, running.kind) == (request.name, "VirtualMachine")
    core = k8s.CoreV1Api(api_client)
    secret = core.read_namespaced_secret(secret_name(request), namespace)
    assert secret.metadata.owner_references[0].uid == request.uid

    again = await backend.ensure(request)  # idempotent: the same instance keeps running
    assert again.instance_id == running.instance_id

    await backend.stop(namespace, request.name)
    stopped = await _phase(backend, namespace, request.name, VMPhase.STOPPED)
    assert stopped.instance_id is None
    await backend.start(namespace, request.name)
    restarted = await _phase(backend, namespace, request.name, VMPhase.RUNNING)

    await backend.reboot(namespace, request.name)
    rebooted = await _phase(backend, namespace, request.name, VMPhase.RUNNING, other_than=restarted.instance_id)
    assert rebooted.nics["public"].ip == restarted.nics["public"].ip

    await backend.destroy(namespace, request.name)
    await _phase(backend, namespace, request.name, VMPhase.ABSENT)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_secret(secret_name(request), namespace)
    assert err.value.status == 404
    await backend.destroy(namespace, request.name)  # already gone: still fine


async def test_ensure_halted_and_reboot_of_a_stopped_vm_starts_it(backend, make_ssvm, namespace):
    request = make_ssvm("zone2-ssvm-1", zone=example("Zone", "zone2"), running=False)
    await backend.ensure(request)
    await _phase(backend, namespace, request.name, VMPhase.STOPPED)
    await backend.reboot(namespace, request.name)
    running = await _phase(backend, namespace, request.name, VMPhase.RUNNING)
    assert running.nics["public"].network == "guest"  # Basic zone: the guest NIC is the public one


async def test_ensure_updates_an_existing_vm(backend, make_ssvm, namespace, api_client):
    request = make_ssvm("zone1-ssvm-2")
    await backend.ensure(request)
    await backend.ensure(dataclasses.replace(request, running=False))
    await _phase(backend, namespace, request.name, VMPhase.STOPPED)
    vm = k8s.CustomObjectsApi(api_client).get_namespaced_custom_object("kubevirt.io", "v1", namespace, "virtualmachines",
                                                                       request.name)
    assert vm["spec"]["runStrategy"] == "Halted" and "running" not in vm["spec"]


async def test_start_of_a_missing_vm_is_a_backend_error(backend, namespace):
    with pytest.raises(BackendError) as err:
        await backend.start(namespace, "no-such-vm")
    assert err.value.reason == "VMAbsent"
    assert (await backend.observe(namespace, "no-such-vm")).phase is VMPhase.ABSENT


@pytest.mark.parametrize("state", FAILURE_STATES)
async def test_failure_states_are_observed_with_their_reason(backend, make_ssvm, namespace, api_client, state):
    request = make_ssvm(f"zone1-fail-{state.lower()}")
    await backend.ensure(request)
    k8s.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        "kubevirt.io", "v1", namespace, "virtualmachines", request.name,
        {"metadata": {"annotations": {FAIL_ANNOTATION: state}}}, _content_type="application/merge-patch+json")
    failed = await _phase(backend, namespace, request.name, VMPhase.FAILED)
    assert failed.reason == state and state in failed.message


async def test_spec_hash_is_stamped_and_a_changed_template_under_a_running_vm_requires_a_restart(backend, make_ssvm, namespace):
    from ssvm_operator.model.spec_hash import material_hash
    request = make_ssvm("zone1-ssvm-3")
    request = dataclasses.replace(request, spec_hash=material_hash(request.zone_spec, request.ssvm_spec))
    await backend.ensure(request)
    running = await _phase(backend, namespace, request.name, VMPhase.RUNNING)
    assert (running.spec_hash, running.restart_required) == (request.spec_hash, False)
    zone_spec = {**request.zone_spec, "secondaryStorage": {**request.zone_spec["secondaryStorage"],
                                                           "template": {"kubevirt": {"containerDiskImage": "registry.example/systemvm:4.20"}}}}
    changed = dataclasses.replace(request, zone_spec=zone_spec, spec_hash=material_hash(zone_spec, request.ssvm_spec))
    assert changed.spec_hash != request.spec_hash
    await backend.ensure(changed)   # patches the VM's template under its running instance, as KubeVirt would be asked to

    async def restart_required():
        seen = await backend.observe(namespace, request.name)
        return seen if seen.restart_required else None
    seen = await await_for(restart_required, "RestartRequired")
    assert seen.spec_hash == changed.spec_hash
    await backend.reboot(namespace, request.name)   # a new instance from the new template
    after = await _phase(backend, namespace, request.name, VMPhase.RUNNING, other_than=running.instance_id)
    assert not after.restart_required
