"""The guest channel and agent with real components: sshd, iptables, network namespaces, nfs-ganesha."""
from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess

import pytest

from ssvm_operator.agent.egress import INTERNAL_NETWORKS
from ssvm_operator.agent.stores import classify_mount_failure
from ssvm_operator.ssh import errors
from ssvm_operator.ssh.channel import SSHGuestChannel, Timeouts
from ssvm_operator.ssh.keys import generate_keypair
from tests.support.rotation import rotate_operator_key
from tests.system import guestlab
from tests.system.netlab import NetLab

pytestmark = pytest.mark.system

TIMEOUTS = Timeouts(connect=3, banner=5, auth=5, command=30, deadline=45)
PASSWORD = "sys-copy-Pa55word!"
SITES = ["198.51.100.0/24"]

FETCH = """
import base64, sys, urllib.request, urllib.error
url, user, password = sys.argv[1:4]
req = urllib.request.Request(url)
if user:
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
try:
    with urllib.request.urlopen(req, timeout=3) as resp:
        print(resp.status, resp.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError as exc:
    print("ERROR", type(exc).__name__, exc)
    sys.exit(3)
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    net = NetLab()
    try:
        built = guestlab.build(net, tmp_path_factory.mktemp("guestlab"))
        archive = guestlab.install_agent(built)
        guestlab.start_sshd(built)
        guestlab.start_copy_server(built, archive)
        built.nfs_url = guestlab.start_ganesha(built)
        yield built
    finally:
        net.close()


@pytest.fixture
def channel(lab):
    return SSHGuestChannel(lab.operator_key.private_openssh.encode(), TIMEOUTS)


def iptables_rules(lab) -> list[str]:
    return lab.net.exec(lab.ssvm_ns, "iptables", "-S").stdout.splitlines()


def fetch(lab, ns: str, url: str, user: str = "", password: str = "") -> subprocess.CompletedProcess:
    return lab.net.exec(ns, "/usr/bin/python3", "-I", "-c", FETCH, url, user, password, check=False, timeout=30)


def test_the_nfs_export_is_real_and_reachable_from_the_ssvm(lab):
    listing = lab.net.exec(lab.ssvm_ns, "nfs-ls", f"{lab.nfs_url}/template?version=4").stdout
    assert "ready.txt" in listing
    content = lab.net.exec(lab.ssvm_ns, "nfs-cat", f"{lab.nfs_url}/template/ready.txt?version=4").stdout
    assert content == "exported by nfs-ganesha\n"


async def test_setup_store_fails_with_a_clear_reason_on_a_kernel_without_nfs_client(lab, channel):
    result = await channel.run_action(lab.target(), "setup-store", {"url": lab.nfs_url, "nfsVersion": "4"})
    assert not result.ok and result.exit_code == 1 and result.simulated is False
    assert result.reason == "NoNFSClientSupport", result.data
    assert "no NFS client" in result.message
    # The real mount command against the same export fails the same way, and is classified alike.
    target = lab.work / "mnt-probe"
    target.mkdir(exist_ok=True)
    mount = lab.net.exec(lab.ssvm_ns, "mount", "-t", "nfs", "-o", "vers=4,soft,timeo=50,retrans=1",
                         f"{lab.nfs_server}:/export", str(target), check=False)
    assert mount.returncode != 0
    assert classify_mount_failure(mount.stderr, mount.returncode) == "NoNFSClientSupport", mount.stderr


async def test_firewall_and_vm_setup_program_exactly_the_expected_rules(lab, channel):
    target = lab.target()
    fw = await channel.run_action(target, "firewall", {"peers": [lab.peer_ok], "encryptCopy": False})
    assert fw.ok and not fw.simulated, fw.data
    vm = await channel.run_action(target, "vm-setup", {"allowedInternalSites": SITES, "managementInterface": "eth0",
                                                       "managementGateway": lab.operator_side, "copyPassword": PASSWORD})
    assert vm.ok, vm.data
    expected = [
        "-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT",
        "-N SSVM-COPY", "-N SSVM-DOWNLOAD", "-N SSVM-OUTBOUND",
        "-A INPUT ! -i lo -p tcp -m tcp --dport 80 -j SSVM-COPY",
        "-A OUTPUT -m mark --mark 0x55d1 -j SSVM-DOWNLOAD",
        "-A OUTPUT -o eth0 -j SSVM-OUTBOUND",
        f"-A SSVM-COPY -s {lab.peer_ok}/32 -j ACCEPT",
        "-A SSVM-COPY -j DROP",
        "-A SSVM-DOWNLOAD -d 198.51.100.0/24 -j RETURN",
        *(f"-A SSVM-DOWNLOAD -d {net} -j REJECT --reject-with icmp-admin-prohibited" for net in INTERNAL_NETWORKS),
        "-A SSVM-OUTBOUND -d 198.51.100.0/24 -p tcp -m state --state NEW -j ACCEPT",
    ]
    assert iptables_rules(lab) == expected
    routes = lab.net.exec(lab.ssvm_ns, "ip", "route", "show", "198.51.100.0/24").stdout
    assert f"via {lab.operator_side} dev eth0" in routes
    # Pushing the same content again changes nothing.
    again = await channel.run_action(target, "firewall", {"peers": [lab.peer_ok]})
    assert again.ok and again.data["changed"] is False and iptables_rules(lab) == expected
    creds = lab.agent_root / "etc/ssvm-agent/copy-credentials.json"
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600 and PASSWORD not in creds.read_text()


async def test_only_the_allowed_peer_can_fetch_from_the_copy_server(lab, channel):
    await channel.run_action(lab.target(), "firewall", {"peers": [lab.peer_ok]})
    await channel.run_action(lab.target(), "vm-setup", {"allowedInternalSites": SITES, "managementInterface": "eth0",
                                                        "managementGateway": lab.operator_side, "copyPassword": PASSWORD})
    store = lab.agent_root / "mnt/SecStorage/store-sys/template"
    store.mkdir(parents=True, exist_ok=True)
    (store / "systemvm.qcow2").write_text("template bytes")
    path = "/store-sys/template/systemvm.qcow2"
    ok = fetch(lab, lab.peer_ok_ns, f"http://{lab.ssvm_public_ok}{path}", "cloud", PASSWORD)
    assert ok.returncode == 0 and ok.stdout.strip() == "200 template bytes", ok.stdout + ok.stderr
    unauthenticated = fetch(lab, lab.peer_ok_ns, f"http://{lab.ssvm_public_ok}{path}")
    assert unauthenticated.stdout.strip() == "401"
    denied = fetch(lab, lab.peer_bad_ns, f"http://{lab.ssvm_public_bad}{path}", "cloud", PASSWORD)
    assert denied.returncode == 3 and "timed out" in denied.stdout.lower(), denied.stdout
    # Swapping the allowed peer swaps who gets in.
    await channel.run_action(lab.target(), "firewall", {"peers": [lab.peer_bad]})
    assert fetch(lab, lab.peer_bad_ns, f"http://{lab.ssvm_public_bad}{path}", "cloud", PASSWORD).stdout.startswith("200")
    assert fetch(lab, lab.peer_ok_ns, f"http://{lab.ssvm_public_ok}{path}", "cloud", PASSWORD).returncode == 3
    await channel.run_action(lab.target(), "firewall", {"peers": [lab.peer_ok]})


async def test_check_over_ssh_sees_dns_management_and_the_copy_server(lab, channel):
    management = socket.socket()
    management.bind((lab.operator_side, 0))
    management.listen(4)
    try:
        payload = {"dnsNames": ["localhost"], "copyServer": True,
                   "management": {"host": lab.operator_side, "port": management.getsockname()[1]}}
        result = await channel.run_action(lab.target(), "check", payload)
    finally:
        management.close()
    assert result.ok and result.data["healthy"], result.data
    assert result.data["activeSessions"] == 0
    assert {c["name"] for c in result.data["checks"]} == {"dns:localhost", "management", "copyServer"}
    closed = await channel.run_action(lab.target(), "check", {**payload, "dnsNames": []})
    assert closed.exit_code == 3 and closed.data["problems"] == ["management"]


async def test_a_wrong_pinned_host_key_never_proceeds(lab, channel):
    with pytest.raises(errors.HostKeyMismatch) as exc:
        await channel.run_action(lab.target(host_key=generate_keypair().public_openssh), "vm-setup",
                                 {"copyPassword": PASSWORD})
    assert exc.value.reason == "HostKeyMismatch" and lab.host_key.fingerprint in str(exc.value)


async def test_a_refused_connection_is_connection_refused(lab, channel):
    with pytest.raises(errors.ConnectionRefused) as exc:
        await channel.run_action(lab.target(address=lab.edge), "info", {})
    assert exc.value.reason == "ConnectionRefused"


async def test_a_black_holed_port_times_out(lab, channel):
    lab.net.exec(lab.edge_ns, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "3922", "-j", "DROP")
    try:
        with pytest.raises(errors.Timeout) as exc:
            await channel.run_action(lab.target(address=lab.edge), "info", {})
        assert exc.value.reason == "Timeout"
    finally:
        lab.net.exec(lab.edge_ns, "iptables", "-D", "INPUT", "-p", "tcp", "--dport", "3922", "-j", "DROP")


async def test_operator_key_rotation_on_a_real_sshd(lab, channel):
    new_pair = generate_keypair("operator-rotated")
    rotated = await rotate_operator_key(channel, lab.target(), new_pair.private_openssh)
    assert (await rotated.run_action(lab.target(), "info", {})).ok
    with pytest.raises(errors.AuthenticationFailed):
        await channel.run_action(lab.target(), "info", {})
    # Rotate back so the module's other tests keep working whatever the order.
    await rotate_operator_key(rotated, lab.target(), lab.operator_key.private_openssh)
    assert (await channel.run_action(lab.target(), "info", {})).ok


async def test_secrets_never_appear_in_results_errors_logs_or_guest_files(lab, channel, caplog, capsys):
    texts = []
    with caplog.at_level(logging.DEBUG):
        texts.append(json.dumps((await channel.run_action(lab.target(), "vm-setup", {
            "copyPassword": PASSWORD, "allowedInternalSites": SITES, "managementInterface": "eth0"})).data))
        texts.append(json.dumps((await channel.run_action(lab.target(), "vm-setup", {
            "copyPassword": PASSWORD, "allowedInternalSites": ["0.0.0.0/0"]})).data))
        for target in (lab.target(host_key=generate_keypair().public_openssh), lab.target(address=lab.edge)):
            try:
                await channel.run_action(target, "vm-setup", {"copyPassword": PASSWORD})
            except errors.GuestError as exc:
                texts.append(repr(exc) + str(exc))
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    for path in (lab.work / "sshd/sshd.log", lab.work / "copy-server.log"):
        texts.append(path.read_text() if path.exists() else "")
    for root, _, files in os.walk(lab.agent_root):
        for name in files:
            texts.append(open(os.path.join(root, name), errors="replace").read())
    secret_line = lab.operator_key.private_openssh.splitlines()[1]
    for text in texts:
        assert PASSWORD not in text
        assert secret_line not in text
