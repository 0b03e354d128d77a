"""The libvirt backend against libvirt's own mock driver (`test:///default`, in process): readiness and its
reasons, a domain's phases, stop, reboot and destroy, and the errors a host gives. Defining a domain from
scratch uploads its config disk, which the mock driver cannot do: tests/system/test_libvirt_backend.py
covers that on a real libvirtd."""
from __future__ import annotations

import secrets

import libvirt   # the libvirt extra, which hack/setup.sh installs
import pytest

from ssvm_operator.backends.base import BackendError
from ssvm_operator.backends.libvirt import domain as d
from ssvm_operator.backends.libvirt.backend import LibvirtBackend
from ssvm_operator.model.spec_hash import material_hash
from ssvm_operator.model.vm import VMPhase, VMRequest

URI = "test:///default"


def zone(**template) -> dict:
    base = {"uri": URI, "domainType": "qemu", "storagePool": "default-pool", "shutdownTimeoutSeconds": 1,
            "image": {"kernel": "/k", "initrd": "/i", "rootDisk": "/r.qcow2"},
            "networks": {"control": {"network": "default", "cidr": "10.0.0.0/24", "gateway": "10.0.0.1"}}}
    return {"secondaryStorage": {"backend": "libvirt", "template": {"libvirt": {**base, **template}}}}


@pytest.fixture()
def conn():
    c = libvirt.open(URI)
    yield c
    c.close()


def defined(conn, spec: dict, name: str | None = None) -> tuple[LibvirtBackend, str]:
    """A domain defined as the backend defines it (without the volumes the mock driver cannot fill), bound."""
    name = name or f"s-{secrets.token_hex(3)}"
    request = VMRequest(namespace="ns", name=name, uid="u", zone_name="z1", role="templateProcessor", running=True,
                        zone_spec=spec, ssvm_spec={}, spec_hash=material_hash(spec, {}))
    template = d.effective_template(spec, {})
    record = d.DomainRecord("ns", name, "z1", "u", request.spec_hash, 0, {"control": "10.0.0.7"}, {"control": "network:default"})
    conn.defineXML(d.build_domain_xml(request, template, record, template.storage_pool).replace("type='qemu'", "type='test'", 1))
    backend = LibvirtBackend()
    backend.bind({"metadata": {"namespace": "ns", "name": name}, "spec": {}}, {"metadata": {"name": "z1"}, "spec": spec})
    return backend, name


async def test_a_reachable_host_with_its_pool_is_ready():
    ready = await LibvirtBackend().readiness("ns", "z1", zone())
    assert (ready.can_run_vms, ready.template_ready, ready.reason) == (True, True, "LibvirtReady"), ready


@pytest.mark.parametrize("template, reason", [
    ({"storagePool": "no-such-pool"}, "StoragePoolNotFound"),
    ({"networks": {"control": {"network": "no-such-net", "cidr": "10.0.0.0/24"}}}, "NetworkNotFound"),
    ({"networks": {"control": {"network": "default", "cidr": "10.0.0.0/24", "firstAddress": "10.0.1.1"}}}, "InvalidLibvirtNetwork"),
    ({"uri": "qemu+unix:///system?socket=/nonexistent/libvirt-sock"}, "HostUnreachable"),
])
async def test_what_is_missing_on_the_host_is_the_zone_s_reason(template, reason):
    ready = await LibvirtBackend().readiness("ns", "z1", zone(**template))
    assert not ready.can_run_vms and ready.reason == reason, ready
    assert "socket=" not in ready.message   # the URI's query (a keyfile path) stays out of messages


async def test_a_zone_without_the_template_says_so():
    ready = await LibvirtBackend().readiness("ns", "z1", {"secondaryStorage": {"backend": "libvirt"}})
    assert (ready.can_run_vms, ready.template_ready, ready.reason) == (False, False, "TemplateMissing")


async def test_a_domain_s_phases_addresses_and_instances_are_observed(conn):
    backend, name = defined(conn, zone())
    assert (await backend.observe("ns", name)).phase == VMPhase.STOPPED
    await backend.start("ns", name)
    running = await backend.observe("ns", name)
    assert running.phase == VMPhase.RUNNING and running.kind == "LibvirtDomain" and running.backend_name == f"ns.{name}"
    assert running.control_ip == "10.0.0.7" and running.nics["public"].ip == "10.0.0.7"   # public rides control
    assert running.spec_hash == material_hash(zone(), {})
    await backend.reboot("ns", name)
    rebooted = await backend.observe("ns", name)
    assert rebooted.phase == VMPhase.RUNNING and rebooted.instance_id != running.instance_id   # a new instance
    await backend.stop("ns", name)
    assert (await backend.observe("ns", name)).phase == VMPhase.STOPPED
    await backend.destroy("ns", name)
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(f"ns.{name}")
    assert (await backend.observe("ns", name)).phase == VMPhase.ABSENT


async def test_acting_on_a_missing_domain_or_an_unbound_ssvm_is_a_clear_error():
    backend, name = LibvirtBackend(), "never-defined"
    with pytest.raises(BackendError) as e:
        await backend.start("ns", name)
    assert e.value.reason == "NotBound"
    backend.bind({"metadata": {"namespace": "ns", "name": name}, "spec": {}}, {"metadata": {"name": "z1"}, "spec": zone()})
    assert (await backend.observe("ns", name)).phase == VMPhase.ABSENT
    with pytest.raises(BackendError) as e:
        await backend.stop("ns", name)
    assert e.value.reason == "VMAbsent"
    await backend.destroy("ns", name)   # destroying what is not there succeeds


async def test_ensure_with_a_missing_pool_names_the_pool():
    spec = zone(storagePool="gone-pool")
    request = VMRequest(namespace="ns", name="s-x", uid="u", zone_name="z1", role="templateProcessor", running=True,
                        zone_spec=spec, ssvm_spec={}, host_private_key="PRIVATE-KEY-TEXT", operator_public_key="ssh-ed25519 AAAA op")
    with pytest.raises(BackendError) as e:
        await LibvirtBackend().ensure(request)
    assert e.value.reason == "StoragePoolNotFound" and "gone-pool" in e.value.message
    assert "PRIVATE-KEY-TEXT" not in e.value.message
