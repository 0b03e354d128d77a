"""A libvirt host reached over SSH, as a remote KVM host is: libvirtd behind a real sshd on loopback, the
operator's key read from the zone's Secret and the host's key pinned by `knownHosts` (qemu+libssh)."""
from __future__ import annotations

import base64
import socket
import subprocess
import textwrap
from pathlib import Path

import pytest

from ssvm_operator.backends.libvirt.backend import LibvirtBackend
from ssvm_operator.ssh.keys import generate_keypair
from tests.processes import stop_process
from tests.system import libvirtlab
from tests.system.netlab import sh, tcp_open, wait_for

pytestmark = pytest.mark.system


class Secrets:
    """The one Secret the backend reads: the SSH key for the host."""

    def __init__(self, private_key: str) -> None:
        self.data = {"ssh-privatekey": base64.b64encode(private_key.encode()).decode()}
        self.reads = 0

    async def read_secret(self, namespace: str, name: str) -> dict | None:
        self.reads += 1
        return {"data": self.data} if name == "kvm-ssh" else None


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """sshd on 127.0.0.1 admitting one key as root, libvirtd behind it, and a storage pool."""
    work = tmp_path_factory.mktemp("libvirt-remote")
    pid_files = libvirtlab.start_libvirtd()
    host, client = generate_keypair("kvm-host"), generate_keypair("operator")
    (work / "host_key").write_text(host.private_openssh)
    (work / "host_key").chmod(0o600)
    (work / "authorized_keys").write_text(client.public_openssh + "\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = work / "sshd_config"
    config.write_text(textwrap.dedent(f"""\
        Port {port}
        ListenAddress 127.0.0.1
        HostKey {work / 'host_key'}
        AuthorizedKeysFile {work / 'authorized_keys'}
        PermitRootLogin prohibit-password
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        PidFile {work / 'sshd.pid'}
        LogLevel ERROR
        """))
    Path("/run/sshd").mkdir(exist_ok=True)
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    pool = f"remote-{port}"
    (work / "pool").mkdir()
    try:
        wait_for(lambda: tcp_open("127.0.0.1", port), 15, "sshd on loopback")
        sh("virsh", "-c", libvirtlab.URI, "pool-define-as", pool, "dir", "--target", str(work / "pool"))
        sh("virsh", "-c", libvirtlab.URI, "pool-start", pool)
        yield {"port": port, "host": host, "client": client, "pool": pool}
    finally:
        sh("virsh", "-c", libvirtlab.URI, "pool-destroy", pool, check=False)
        sh("virsh", "-c", libvirtlab.URI, "pool-undefine", pool, check=False)
        stop_process(sshd, grace=5)
        libvirtlab.stop_started(pid_files)


def zone(remote, known_hosts: str) -> dict:
    return {"secondaryStorage": {"backend": "libvirt", "template": {"libvirt": {
        "uri": f"qemu+libssh://root@127.0.0.1:{remote['port']}/system", "knownHosts": known_hosts,
        "sshKeySecretRef": {"name": "kvm-ssh", "key": "ssh-privatekey"}, "domainType": "qemu", "storagePool": remote["pool"],
        "image": {"kernel": "/k", "initrd": "/i", "rootDisk": "/r.qcow2"},
        "networks": {"control": {"bridge": "br0", "cidr": "10.0.0.0/24"}}}}}}


async def test_the_host_is_reached_with_the_key_from_the_secret_and_its_pinned_host_key(remote):
    pinned = f"[127.0.0.1]:{remote['port']} {remote['host'].public_openssh}"
    secrets = Secrets(remote["client"].private_openssh)
    backend = LibvirtBackend(secrets)
    ready = await backend.readiness("ns", "z1", zone(remote, pinned))
    assert (ready.can_run_vms, ready.reason) == (True, "LibvirtReady"), ready
    assert (await backend.readiness("ns", "z1", zone(remote, pinned))).reason == "LibvirtReady"
    assert secrets.reads == 1   # the key is read once, not on every pass

    impostor = f"[127.0.0.1]:{remote['port']} {generate_keypair('impostor').public_openssh}"
    refused = await LibvirtBackend(Secrets(remote["client"].private_openssh)).readiness("ns", "z1", zone(remote, impostor))
    assert not refused.can_run_vms and refused.reason == "HostUnreachable", refused

    stranger = await LibvirtBackend(Secrets(generate_keypair("stranger").private_openssh)).readiness("ns", "z1", zone(remote, pinned))
    assert not stranger.can_run_vms and stranger.reason == "HostUnreachable", stranger
    for answer in (refused, stranger):
        assert "PRIVATE KEY" not in answer.message and "keyfile" not in answer.message


async def test_a_missing_key_secret_is_named():
    spec = {"secondaryStorage": {"backend": "libvirt", "template": {"libvirt": {
        "uri": "qemu+libssh://root@127.0.0.1:1/system", "sshKeySecretRef": {"name": "other", "key": "ssh-privatekey"},
        "image": {"kernel": "/k", "initrd": "/i", "rootDisk": "/r.qcow2"},
        "networks": {"control": {"bridge": "br0", "cidr": "10.0.0.0/24"}}}}}}
    ready = await LibvirtBackend(Secrets("unused")).readiness("ns", "z1", spec)
    assert ready.reason == "SecretNotFound" and "ns/other" in ready.message
