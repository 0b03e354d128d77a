"""A template download by the real agent in a network namespace behind real iptables: vm-setup programs
the download egress chain, the job process downloads from an HTTP server in another namespace through
it, and a private site not in the allowed list is refused by the agent and rejected by the rules
themselves for the download's marked sockets.

The host kernel has no NFS client, so the store is a tmpfs mounted where the agent mounts the store's
export; the guest kernel's NFS mount of a store is proven by the libvirt system test."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from ssvm_operator.agent.egress import DOWNLOAD_CHAIN, DOWNLOAD_MARK
from ssvm_operator.agent.pack import build_zipapp
from ssvm_operator.agent.stores import store_id
from tests.support.http_source import qcow2_image
from tests.system.netlab import NetLab, sh, wait_for

pytestmark = pytest.mark.system

STORE = "nfs://198.51.100.9/export/secondary"
CONNECT = """
import socket, sys
sock = socket.socket()
if sys.argv[3] == "marked":
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, int(sys.argv[4], 16))
sock.settimeout(3)
try:
    sock.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except OSError as exc:
    print("refused", exc.errno)
"""


class Lab:
    def __init__(self, net: NetLab, work: Path):
        self.net, self.work = net, work
        self.ssvm, self.web, self.other = net.netns("tssvm"), net.netns("tweb"), net.netns("tother")
        self.web_ip, self.other_ip = net.addr(1, 2), net.addr(1, 6)
        net.link(self.ssvm, "eth0", net.addr(1, 1), self.web, "eth0", self.web_ip)
        net.link(self.ssvm, "eth1", net.addr(1, 5), self.other, "eth0", self.other_ip)
        self.root = work / "guest-root"
        self.pyz = build_zipapp(work / "ssvm-agent.pyz")
        self.mount = self.root / "mnt/SecStorage" / store_id("198.51.100.9", "/export/secondary")
        self.mount.mkdir(parents=True)
        sh("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(self.mount))

    def serve(self, ns: str, address: str, files: dict[str, bytes]) -> Path:
        site = self.work / f"www-{ns}"
        site.mkdir()
        for name, data in files.items():
            (site / name).write_bytes(data)
        log = self.work / f"http-{ns}.log"
        self.net.spawn(ns, "/usr/bin/python3", "-I", "-m", "http.server", "80", "--bind", address, "--directory", str(site),
                       log_path=str(log))
        wait_for(lambda: self.net.exec(ns, "ss", "-ltn", check=False).stdout.count(":80 ") > 0, 15, f"http server in {ns}")
        return log

    def agent(self, action: str, payload: dict) -> dict:
        done = self.net.exec(self.ssvm, "/usr/bin/python3", "-I", str(self.pyz), "--root", str(self.root), action,
                             input=json.dumps(payload), check=False, timeout=60)
        return json.loads(done.stdout)

    def rules(self) -> list[str]:
        return self.net.exec(self.ssvm, "iptables", "-L", DOWNLOAD_CHAIN, "-v", "-n", "-x").stdout.splitlines()

    def close(self) -> None:
        sh("umount", "-l", str(self.mount), check=False)
        self.net.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(NetLab(), tmp_path_factory.mktemp("template-lab"))
    try:
        yield lab
    finally:
        lab.close()


def _packets(rules: list[str], target: str, destination: str) -> int:
    for line in rules:
        fields = line.split()
        if len(fields) >= 9 and fields[2] == target and fields[8] == destination:
            return int(fields[0])
    raise AssertionError(f"no {target} rule for {destination} in {rules}")


def _wait_job(lab: Lab, job: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = lab.agent("jobs", {"jobs": [job]})["jobs"].get(job) or {}
        if state.get("state") in ("Ready", "Error", "Interrupted"):
            return state
        time.sleep(0.2)
    raise AssertionError(f"job {job} did not finish")


def test_a_download_goes_out_through_the_egress_rules_and_a_site_not_allowed_is_blocked_by_them(lab):
    image = qcow2_image(3_000_000)
    lab.serve(lab.web, lab.web_ip, {"img.qcow2": image})
    other_log = lab.serve(lab.other, lab.other_ip, {"img.qcow2": image})
    setup = lab.agent("vm-setup", {"allowedInternalSites": [lab.web_ip], "managementInterface": "eth0"})
    assert setup["ok"], setup
    assert f"-A {DOWNLOAD_CHAIN} -d {lab.web_ip}/32 -j RETURN" in setup["downloadRules"]

    started = lab.agent("template-download", {
        "job": "sys-1", "request": "r1", "storeUrl": STORE, "installDir": "template/tmpl/ns/img", "fileName": "img.qcow2",
        "format": "QCOW2", "checksum": "sha256:" + hashlib.sha256(image).hexdigest(), "stallSeconds": 10,
        "source": {"url": f"http://{lab.web_ip}/img.qcow2", "allowedInternalSites": [f"{lab.web_ip}/32"]}})
    assert started["ok"] and started["started"], started
    state = _wait_job(lab, "sys-1")
    assert state["state"] == "Ready", state
    assert (lab.mount / "template/tmpl/ns/img/img.qcow2").read_bytes() == image
    assert _packets(lab.rules(), "RETURN", f"{lab.web_ip}") > 0, "the download's packets went through the egress chain"

    refused = lab.agent("template-download", {
        "job": "sys-2", "request": "r1", "storeUrl": STORE, "installDir": "template/tmpl/ns/other", "fileName": "other.qcow2",
        "format": "QCOW2", "source": {"url": f"http://{lab.other_ip}/img.qcow2", "allowedInternalSites": [f"{lab.web_ip}/32"]}})
    assert refused["ok"], refused
    assert _wait_job(lab, "sys-2")["reason"] == "InternalAddressRefused"
    assert "GET /img.qcow2" not in other_log.read_text(), "the agent sent nothing to the site not allowed"

    # The rules themselves: a socket with the download's mark cannot reach the site, one without it can.
    before = _packets(lab.rules(), "REJECT", "198.18.0.0/15")
    mark = f"{DOWNLOAD_MARK:x}"
    marked = lab.net.exec(lab.ssvm, "/usr/bin/python3", "-I", "-c", CONNECT, lab.other_ip, "80", "marked", mark).stdout.strip()
    plain = lab.net.exec(lab.ssvm, "/usr/bin/python3", "-I", "-c", CONNECT, lab.other_ip, "80", "plain", mark).stdout.strip()
    assert marked.startswith("refused") and plain == "connected", (marked, plain)
    assert _packets(lab.rules(), "REJECT", "198.18.0.0/15") > before, "the REJECT rule of the egress chain refused it"
