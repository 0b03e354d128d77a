"""A libvirt host for system tests: libvirtd started here when it is not running (no systemd), a bridge
with the operator's side of the SSVMs' network, a directory storage pool holding the SSVM image, an
nfs-ganesha export and a stranger, each in a network namespace plugged into the bridge."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tests.system.netlab import NetLab, sh, wait_for

GANESHA = shutil.which("ganesha.nfsd") or "/usr/bin/ganesha.nfsd"
LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"
URI = "qemu:///system"


def _listening(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def start_libvirtd() -> list[str]:
    """libvirtd and virtlogd, started when not already running; returns the pid files of those started here."""
    if os.path.exists("/dev/kvm"):
        # libvirt re-probes QEMU (seconds per call) when its qemu user cannot open /dev/kvm: give the device
        # the group and mode udev gives it on a normal host, so the capability cache stays valid.
        subprocess.run(["chgrp", "kvm", "/dev/kvm"], check=False)
        os.chmod("/dev/kvm", 0o660)
    started = []
    if not _listening("/run/libvirt/virtlogd-sock"):
        sh("virtlogd", "-d", "-p", "/run/ssvm-test-virtlogd.pid")
        started.append("/run/ssvm-test-virtlogd.pid")
    if not _listening(LIBVIRT_SOCKET):
        sh("libvirtd", "-d", "-p", "/run/ssvm-test-libvirtd.pid")
        started.append("/run/ssvm-test-libvirtd.pid")
    wait_for(lambda: sh("virsh", "-c", URI, "version", check=False).returncode == 0, 60, "libvirtd answering")
    return started


def stop_started(pid_files: list[str]) -> None:
    for path in reversed(pid_files):
        try:
            os.kill(int(Path(path).read_text().strip()), 15)
        except (OSError, ValueError):
            pass


@dataclass
class LibvirtLab:
    net: NetLab
    work: Path          # under /var/lib: libvirt's qemu user must read the image
    image: Path
    bridge: str = ""
    pool: str = ""
    nfs_ns: str = ""
    stranger_ns: str = ""
    pid_files: list[str] = field(default_factory=list)

    def addr(self, host: int) -> str:
        return self.net.addr(0, host)

    @property
    def gateway(self) -> str:
        return self.addr(1)

    @property
    def nfs_server(self) -> str:
        return self.addr(10)

    @property
    def stranger(self) -> str:
        return self.addr(30)

    @property
    def cidr(self) -> str:
        return self.addr(0) + "/24"

    @property
    def export(self) -> Path:
        return self.work / "nfs-export"

    def plug(self, role: str, host: int) -> str:
        """A namespace on the bridge with address .host."""
        ns = self.net.netns(role)
        inner, outer = f"i{self.net.tag}{host}", f"o{self.net.tag}{host}"
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        self.net.root_links.append(outer)
        sh("ip", "link", "set", outer, "master", self.bridge, "up")
        sh("ip", "link", "set", inner, "netns", ns)
        self.net.exec(ns, "ip", "link", "set", inner, "name", "eth0")
        self.net.exec(ns, "ip", "addr", "add", f"{self.addr(host)}/24", "dev", "eth0")
        self.net.exec(ns, "ip", "link", "set", "eth0", "up")
        self.net.exec(ns, "ip", "route", "add", "default", "via", self.gateway)
        return ns

    def zone_template(self, address_first: int = 100, address_last: int = 109) -> dict:
        return {"uri": URI, "domainType": "qemu", "storagePool": self.pool, "shutdownTimeoutSeconds": 20,
                "image": {"kernel": str(self.work / "vmlinuz"), "initrd": str(self.work / "initrd.img"),
                          "rootDisk": str(self.work / "rootfs.qcow2")},
                "networks": {"control": {"bridge": self.bridge, "cidr": self.cidr, "gateway": self.gateway,
                                         "firstAddress": self.addr(address_first), "lastAddress": self.addr(address_last)}}}

    def virsh(self, *args: str, check: bool = True) -> str:
        return sh("virsh", "-c", URI, *args, check=check, timeout=60).stdout

    def domains(self) -> dict[str, str]:
        """Domain name -> state, of every domain libvirt knows (`virsh list --all`)."""
        out = {}
        for line in self.virsh("list", "--all").splitlines()[2:]:
            parts = line.split(None, 2)
            if len(parts) == 3:
                out[parts[1]] = parts[2].strip()
        return out

    def volumes(self) -> list[str]:
        """Volume names in the lab's storage pool."""
        self.virsh("pool-refresh", self.pool)
        return [line.split()[0] for line in self.virsh("vol-list", self.pool).splitlines()[2:] if line.strip()]

    def remove(self, prefix: str) -> None:
        """Domains and volumes whose names start with `prefix` (a test's namespace and a dot), gone."""
        for name in self.domains():
            if name.startswith(prefix):
                self.virsh("destroy", name, check=False)
                self.virsh("undefine", name, check=False)
        for volume in self.volumes():
            if volume.startswith(prefix):
                self.virsh("vol-delete", "--pool", self.pool, volume, check=False)

    def close(self) -> None:
        self.virsh("pool-destroy", self.pool, check=False)
        self.virsh("pool-undefine", self.pool, check=False)
        self.net.close()
        sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.work, ignore_errors=True)
        stop_started(self.pid_files)


def start_ganesha(lab: LibvirtLab) -> None:
    """NFSv4 and NFSv3 from one export. v3 needs rpcbind on the server: it runs in the NFS namespace with a
    private /run (its socket path is otherwise host-wide), and ganesha registers with it there."""
    for sub in ("a", "b"):
        (lab.export / sub).mkdir(parents=True, exist_ok=True)
    config = lab.work / "ganesha.conf"
    config.write_text(textwrap.dedent(f"""\
        NFS_CORE_PARAM {{ Protocols = 3, 4; NFS_Port = 2049; MNT_Port = 20048; Enable_NLM = false; Enable_RQUOTA = false; }}
        NFSV4 {{ Graceless = true; RecoveryBackend = fs; }}
        EXPORT {{
          Export_Id = 1; Path = {lab.export}; Pseudo = {lab.export}; Access_Type = RW; Squash = No_Root_Squash;
          Protocols = 3, 4; Transports = TCP; SecType = sys;
          FSAL {{ Name = VFS; }}
        }}
        """))
    ganesha = (f"{GANESHA} -F -f {config} -L {lab.work / 'ganesha.log'} -p {lab.work / 'ganesha.pid'} -N NIV_EVENT")
    lab.net.spawn(lab.nfs_ns, "unshare", "--mount", "sh", "-c",
                  f"mount -t tmpfs tmpfs /run && rpcbind -w && exec {ganesha}", log_path=str(lab.work / "nfs-server.log"))
    for version in (4, 3):
        wait_for(lambda: sh("nfs-ls", f"nfs://{lab.nfs_server}{lab.export}?version={version}", check=False,
                            timeout=10).returncode == 0, 30, f"nfs-ganesha exporting over NFSv{version}", interval=0.5)


def build(image: Path) -> LibvirtLab:
    net = NetLab()
    work = Path(f"/var/lib/ssvm-test-{net.tag}")
    lab = LibvirtLab(net, work, image, bridge=f"sb{net.tag}", pool=f"ssvm-{net.tag}")
    try:
        lab.pid_files = start_libvirtd()
        (work / "pool").mkdir(parents=True)
        for path in (work, work / "pool"):
            path.chmod(0o755)
        for name in ("vmlinuz", "initrd.img", "rootfs.qcow2"):
            shutil.copy(image / name, work / name)
        sh("ip", "link", "add", lab.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{lab.gateway}/24", "dev", lab.bridge)
        sh("ip", "link", "set", lab.bridge, "up")
        lab.virsh("pool-define-as", lab.pool, "dir", "--target", str(work / "pool"))
        lab.virsh("pool-start", lab.pool)
        lab.nfs_ns = lab.plug("nfs", 10)
        lab.stranger_ns = lab.plug("stranger", 30)
        start_ganesha(lab)
    except BaseException:
        lab.close()
        raise
    return lab

