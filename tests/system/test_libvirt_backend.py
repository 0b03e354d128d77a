"""The libvirt backend end to end with real parts: the operator (on each control plane) sees a Zone with
backend libvirt and two NFS ImageStores, defines and boots two SSVM domains under libvirtd (QEMU software
emulation) on a bridge, passes the SSH gate with the pinned host key, and the guests' kernels mount the
nfs-ganesha export (NFSv4.1 and NFSv3). A file written through a mount shows in the exported directory,
the firewall admits the other SSVM and nobody else, and stop, start, reboot and delete act on the real domains."""
from __future__ import annotations

import base64
import io
import json
import pathlib
import time

import paramiko
import pytest

from ssvm_operator import constants as c
from ssvm_operator.ssh.keys import generate_keypair
from tests.clusters import real_cluster
from tests.integration.harness import Api, OperatorThread, condition, operator_key_secret, ready_ssvms, wait_for
from tests.system import libvirtlab

pytestmark = pytest.mark.system

BOOT = 600   # seconds: two guests under software emulation on a shared machine
FETCH = ("import sys, urllib.request, urllib.error\n"
         "try:\n    urllib.request.urlopen(sys.argv[1], timeout=5)\n    print('200')\n"
         "except urllib.error.HTTPError as e:\n    print(e.code)\n"
         "except OSError as e:\n    print('ERROR', e)\n")


@pytest.fixture(scope="module")
def lab(ssvm_image):
    built = libvirtlab.build(ssvm_image)
    yield built
    built.close()


@pytest.fixture()
def api(cluster, monkeypatch) -> Api:
    """A namespace on each control plane."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.operator_kubeconfig_path))
    return Api(str(cluster.kubeconfig_path), cluster.namespace())


@pytest.fixture()
def real_api(real_control_plane, monkeypatch) -> Api:
    """A namespace on the real control plane only: booting guests under emulation costs minutes, and what the
    VMs prove is libvirt's and the guests' side, the same whichever API server the operator talks to (the
    dev cluster runs the libvirt backend in test_a_domain_that_cannot_start_says_why)."""
    cluster = real_cluster(real_control_plane)
    monkeypatch.setenv("KUBECONFIG", str(cluster.operator_kubeconfig_path))
    return Api(str(cluster.kubeconfig_path), cluster.namespace())


def guest_shell(address: str, host_key: str, operator_key: str, command: str, timeout: float = 60) -> str:
    """Runs `command` in the guest over SSH on 3922 as the operator, the host key pinned."""
    client = paramiko.SSHClient()
    kind, blob = host_key.split()[:2]
    client.get_host_keys().add(f"[{address}]:3922", kind, paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(address, port=3922, username="root", pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(operator_key)),
                   timeout=10, banner_timeout=20, auth_timeout=20, look_for_keys=False, allow_agent=False)
    try:
        _, out, err = client.exec_command(command, timeout=timeout)
        text = out.read().decode()
        assert out.channel.recv_exit_status() == 0, f"{command}: {err.read().decode()}"
        return text
    finally:
        client.close()


def host_key_of(api: Api, ssvm: str) -> str:
    secret = api.core.read_namespaced_secret(f"{ssvm}-ssh-hostkey", api.ns)
    return base64.b64decode(secret.data["ssh-publickey"]).decode().strip()


@pytest.mark.timeout(1200)
def test_libvirt_zone_runs_real_ssvms_whose_kernels_mount_the_store(real_api, lab):
    api = real_api
    operator = operator_key_secret(api)
    first = 100
    api.create(c.ZONE_PLURAL, c.ZONE_KIND, "z1", {"secondaryStorage": {
        "backend": "libvirt", "template": {"libvirt": lab.zone_template(first, first + 9)},
        "health": {"intervalSeconds": 10, "failureThreshold": 3}}})
    nfs = f"nfs://{lab.nfs_server}{lab.export}"
    api.create(c.IMAGESTORE_PLURAL, c.IMAGESTORE_KIND, "s1", {"zoneRef": "z1", "url": f"{nfs}/a", "nfsVersion": "4.1"})
    api.create(c.IMAGESTORE_PLURAL, c.IMAGESTORE_KIND, "s2", {"zoneRef": "z1", "url": f"{nfs}/b", "nfsVersion": "3",
                                                              "mountOptions": ["nolock"]})   # the server runs no NLM
    prefix = f"{api.ns}."
    started = time.monotonic()

    def phase(what: str) -> None:   # where the minutes go, in the output of a failing or -s run
        print(f"[libvirt system test] {time.monotonic() - started:6.1f}s {what}", flush=True)
    try:
        with OperatorThread(api.ns, None, scan_interval=3.0):
            ssvms = wait_for("2 SSVMs Running, Ready and healthy on libvirt domains", ready_ssvms(api, 2), timeout=BOOT)
            phase("2 SSVMs Ready")
            domains = lab.domains()
            addresses = {}
            for name, ssvm in ssvms.items():
                st = ssvm["status"]
                assert st["backendRef"] == {"backend": "libvirt", "name": f"{api.ns}.{name}", "kind": "LibvirtDomain"}, st["backendRef"]
                assert domains.get(f"{api.ns}.{name}") == "running", domains
                addresses[name] = st["nics"]["control"]["ip"]
                assert addresses[name] in {lab.addr(first + i) for i in range(10)}, addresses[name]
            assert len(set(addresses.values())) == 2, addresses   # each domain its own address from the range
            a, b = sorted(ssvms)
            keys = {n: host_key_of(api, n) for n in ssvms}

            # The stores: mounted on both SSVMs by the guests' NFS clients, the real mount point in status.
            for store, sub in (("s1", "a"), ("s2", "b")):
                body = wait_for(f"store {store} Mounted", lambda: (s := api.get(c.IMAGESTORE_PLURAL, store))
                                and condition(s, "Mounted").get("status") == "True" and s, timeout=120)
                mounts = {m["ssvm"]: m for m in body["status"]["mounts"]}
                assert set(mounts) == {a, b} and all(m["result"] == "Mounted" for m in mounts.values()), mounts
                parent = mounts[a]["parentDir"]
                kernel_mounts = guest_shell(addresses[a], keys[a], operator.private_openssh, "cat /proc/mounts")
                line = next((ln for ln in kernel_mounts.splitlines() if f" {parent} " in ln), "")
                assert line.split()[2:3] in (["nfs"], ["nfs4"]), kernel_mounts
                assert (f"vers={'4.1' if sub == 'a' else '3'}") in line, line
                guest_shell(addresses[a], keys[a], operator.private_openssh, f"echo written-by-{a} > {parent}/probe-{a}.txt")
                assert (lab.export / sub / f"probe-{a}.txt").read_text() == f"written-by-{a}\n"

            phase("stores checked")
            # The firewall and VM setup rules, as iptables in the guest shows them.
            rules = guest_shell(addresses[a], keys[a], operator.private_openssh, "iptables -S").splitlines()
            assert f"-A SSVM-COPY -s {addresses[b]}/32 -j ACCEPT" in rules, rules
            assert "-A SSVM-COPY -j DROP" in rules and "-N SSVM-OUTBOUND" in rules, rules
            # The mesh: the other SSVM reaches a's copy port, a stranger on the same bridge does not.
            url = f"http://{addresses[a]}/"
            from_b = guest_shell(addresses[b], keys[b], operator.private_openssh, f"python3 -c \"{FETCH}\" {url}")
            assert from_b.strip().isdigit(), from_b   # an HTTP answer (401 without the copy password)
            stranger = lab.net.exec(lab.stranger_ns, "python3", "-c", FETCH, url, check=False, timeout=30).stdout
            assert stranger.startswith("ERROR"), stranger

            # The guest's own kernel answers (not this machine's), with the pinned key only, to the operator only.
            assert guest_shell(addresses[a], keys[a], operator.private_openssh, "cat /proc/sys/kernel/random/boot_id").strip() \
                != pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
            with pytest.raises(paramiko.BadHostKeyException):
                guest_shell(addresses[a], keys[b], operator.private_openssh, "true")
            with pytest.raises(paramiko.AuthenticationException):
                guest_shell(addresses[a], keys[a], generate_keypair("stranger").private_openssh, "true")
            assert json.loads((lab.image / "image.json").read_text())["sshPort"] == 3922

            # No secret on the host's side: neither the host key nor the copy password is in a domain's XML.
            xml = lab.virsh("dumpxml", f"{api.ns}.{a}")
            assert "PRIVATE KEY" not in xml and "vmpassword" not in xml and f"eth0ip={addresses[a]}" in xml

            lifecycle(api, lab, (a, addresses[a], keys[a]), (b, addresses[b], keys[b]), operator.private_openssh, phase)
            # The zone replaces a deleted SSVM under the same name: the old domain is told apart by its UUID.
            uuid = lab.virsh("domuuid", f"{api.ns}.{a}").strip()
            api.custom.delete_namespaced_custom_object(c.GROUP, c.VERSION, api.ns, c.SSVM_PLURAL, a)
            wait_for(f"{a}'s domain gone from virsh list --all", lambda: uuid not in lab.virsh("list", "--all", "--uuid"),
                     timeout=120)
            leftovers = [v for v in lab.volumes() if v.startswith(prefix) and v.rsplit("-", 1)[0] not in lab.domains()]
            assert not leftovers, leftovers   # its volumes went with it

            phase("deleted")
            statuses = json.dumps([s.get("status") for s in api.ssvms().values()])
            assert operator.private_openssh.splitlines()[1] not in statuses
    finally:
        lab.remove(prefix)



def lifecycle(api: Api, lab, a: tuple[str, str, str], b: tuple[str, str, str], operator_key: str, phase) -> None:
    """stop leaves a's domain shut off; start gives a, and reboot gives b, a new boot (the two boots at once, one core
    each); after the reboot the guest operations bring b's stores back. a and b are (name, address, host key)."""
    def shell(who: tuple[str, str, str], command: str) -> str:
        return guest_shell(who[1], who[2], operator_key, command)

    def ssvm_status(name: str) -> dict:
        return (api.ssvms().get(name) or {}).get("status", {})

    boot = {who[0]: shell(who, "cat /proc/sys/kernel/random/boot_id") for who in (a, b)}
    api.patch(c.SSVM_PLURAL, a[0], {"spec": {"desiredState": "Stopped"}})
    wait_for(f"{a[0]} Stopped", lambda: ssvm_status(a[0]).get("state") == "Stopped", timeout=120)
    assert lab.domains()[f"{api.ns}.{a[0]}"] == "shut off"
    phase("stopped")
    api.patch(c.SSVM_PLURAL, a[0], {"spec": {"desiredState": "Running"}})
    api.patch(c.SSVM_PLURAL, b[0], {"spec": {"rebootRequest": "reboot-1"}})
    wait_for(f"{a[0]} answering SSH again", lambda: ssvm_status(a[0]).get("state") == "Running"
             and condition({"status": ssvm_status(a[0])}, "SSHReady").get("status") == "True", timeout=BOOT)
    phase("started")
    assert shell(a, "cat /proc/sys/kernel/random/boot_id") != boot[a[0]]
    wait_for(f"{b[0]} rebooted and Ready", lambda: ssvm_status(b[0]).get("observedRebootRequest") == "reboot-1"
             and ready_ssvms(api, 2)(), timeout=BOOT)
    phase("rebooted")
    assert shell(b, "cat /proc/sys/kernel/random/boot_id") != boot[b[0]]
    mounts = shell(b, "cat /proc/mounts")
    assert " nfs4 " in mounts and " nfs " in mounts, mounts   # Ready again means the stores are mounted again


def test_a_domain_that_cannot_start_says_why(api, lab):
    """A bridge missing on the host: libvirt refuses to start the domain, and the SSVM says so (no boot needed)."""
    template = lab.zone_template(130, 131)
    template["networks"]["control"]["bridge"] = "nosuchbr0"
    api.create(c.ZONE_PLURAL, c.ZONE_KIND, "z2", {"secondaryStorage": {"backend": "libvirt", "template": {"libvirt": template}}})
    api.create(c.IMAGESTORE_PLURAL, c.IMAGESTORE_KIND, "s1", {"zoneRef": "z2", "url": f"nfs://{lab.nfs_server}{lab.export}/a"})
    prefix = f"{api.ns}."
    try:
        with OperatorThread(api.ns, None, scan_interval=3.0):
            ssvm = wait_for("the SSVM reporting DomainStartFailed", lambda: next(
                (s for s in api.ssvms().values() if condition(s, "Ready").get("reason") == "DomainStartFailed"), None), timeout=120)
            message = condition(ssvm, "Ready")["message"]
            assert "nosuchbr0" in message and "failed to start" in message, message
            name = ssvm["metadata"]["name"]
            assert lab.domains().get(f"{api.ns}.{name}") == "shut off"   # defined, never started
            events = [e for e in api.events() if e["involved_object"]["name"] == name and e["type"] == "Warning"]
            assert any("DomainStartFailed" in (e.get("message") or "") for e in events), events
    finally:
        lab.remove(prefix)
