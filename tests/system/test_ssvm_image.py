"""The SSVM image (hack/ssvm-image/build.sh) boots under QEMU's software emulation: the boot arguments
configure its NIC, the config disk pins its host key and admits the operator's key, and the agent answers
over SSH on 3922 from the guest's own kernel (its boot id is not this machine's)."""
from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

from ssvm_operator.ssh import errors
from ssvm_operator.ssh.channel import GuestTarget, SSHGuestChannel, Timeouts
from ssvm_operator.ssh.keys import generate_keypair

pytestmark = pytest.mark.system

BOOT_WAIT = 600.0   # seconds: software emulation, one core shared with the rest of the suite
TIMEOUTS = Timeouts(connect=5, banner=20, auth=20, command=60, deadline=90)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def vm(ssvm_image, tmp_path):
    """One SSVM VM: a copy-on-write disk over the image, a config disk, user networking forwarding 3922."""
    host, operator = generate_keypair("ssvm-host"), generate_keypair("operator")
    config = tmp_path / "config"
    config.mkdir()
    (config / "ssh_host_ed25519_key").write_text(host.private_openssh)
    (config / "authorized_keys").write_text(operator.public_openssh + "\n")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "SSVMCFG", "-d", str(config), str(tmp_path / "config.img"), "8M"], check=True)
    shutil.rmtree(config)   # the key material lives only in the disk image
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(ssvm_image / "rootfs.qcow2"),
                    str(tmp_path / "disk.qcow2")], check=True)
    port = _free_port()
    boot_args = ("template=domP type=secstorage name=s-1-VM zone=z1 eth0ip=10.0.2.15 eth0mask=255.255.255.0 "
                 "gateway=10.0.2.2 mtu=1500")
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-accel", "tcg", "-m", "768", "-smp", "1", "-display", "none", "-monitor", "none",
         "-no-reboot", "-kernel", str(ssvm_image / "vmlinuz"), "-initrd", str(ssvm_image / "initrd.img"),
         "-append", f"root=/dev/vda rw console=ttyS0 panic=-1 {boot_args}",
         "-drive", f"file={tmp_path / 'disk.qcow2'},if=virtio,format=qcow2",
         "-drive", f"file={tmp_path / 'config.img'},if=virtio,format=raw,readonly=on",
         "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:3922", "-device", "virtio-net-pci,netdev=n0",
         "-serial", f"file:{tmp_path / 'console.log'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield {"port": port, "host": host, "operator": operator, "console": tmp_path / "console.log", "qemu": qemu,
               "boot_args": boot_args}
    finally:
        qemu.terminate()
        try:
            qemu.wait(10)
        except subprocess.TimeoutExpired:
            qemu.kill()


def test_the_image_boots_and_its_agent_answers_over_ssh_with_the_pinned_key(vm, ssvm_image):
    channel = SSHGuestChannel(vm["operator"].private_openssh.encode(), TIMEOUTS)
    target = GuestTarget("ns/s-1-VM", "127.0.0.1", vm["host"].public_openssh, port=vm["port"])
    started, result, last = time.monotonic(), None, None
    while time.monotonic() - started < BOOT_WAIT and vm["qemu"].poll() is None:
        try:
            result = asyncio.run(channel.run_action(target, "info", {}))
            break
        except errors.GuestError as e:
            last = e
            time.sleep(3)
    console = vm["console"].read_text(errors="replace") if vm["console"].exists() else ""
    assert result is not None, f"no SSH answer within {BOOT_WAIT:g}s ({last}); console tail:\n{console[-3000:]}"
    assert result.ok and not result.simulated
    host_boot = pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert result.data["bootId"] and result.data["bootId"] != host_boot, "answered by the guest's kernel"
    assert json.loads((ssvm_image / "image.json").read_text())["sshPort"] == 3922

    wrong = SSHGuestChannel(vm["operator"].private_openssh.encode(), TIMEOUTS)
    other_host = generate_keypair("not-the-guest")
    with pytest.raises(errors.HostKeyMismatch):
        asyncio.run(wrong.run_action(GuestTarget("ns/s-1-VM", "127.0.0.1", other_host.public_openssh, port=vm["port"]), "info", {}))
    stranger = SSHGuestChannel(generate_keypair("stranger").private_openssh.encode(), TIMEOUTS)
    with pytest.raises(errors.AuthenticationFailed):
        asyncio.run(stranger.run_action(target, "info", {}))
