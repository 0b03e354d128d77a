"""An SSVM in a network namespace: real sshd on 3922 with a pinned host key, the agent zipapp
behind it, its copy server, two peers (one allowed, one not), an nfs-ganesha export in its own
namespace, and an 'edge' namespace for refused and black-holed connections."""
from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ssvm_operator.agent.pack import build_zipapp
from ssvm_operator.ssh.channel import GuestTarget
from ssvm_operator.ssh.keys import KeyPair, generate_keypair
from tests.system.netlab import NetLab, sh, tcp_open, wait_for

SSHD = "/usr/sbin/sshd"
GANESHA = shutil.which("ganesha.nfsd") or "/usr/bin/ganesha.nfsd"


@dataclass
class GuestLab:
    net: NetLab
    work: Path
    operator_key: KeyPair
    host_key: KeyPair
    ssvm_ns: str
    peer_ok_ns: str
    peer_bad_ns: str
    nfs_ns: str
    edge_ns: str

    @property
    def control(self) -> str:
        return self.net.addr(0, 2)

    @property
    def operator_side(self) -> str:
        return self.net.addr(0, 1)

    @property
    def edge(self) -> str:
        return self.net.addr(0, 6)

    @property
    def peer_ok(self) -> str:
        return self.net.addr(1, 2)

    @property
    def peer_bad(self) -> str:
        return self.net.addr(1, 6)

    @property
    def ssvm_public_ok(self) -> str:   # the SSVM's address as the allowed peer reaches it
        return self.net.addr(1, 1)

    @property
    def ssvm_public_bad(self) -> str:
        return self.net.addr(1, 5)

    @property
    def nfs_server(self) -> str:
        return self.net.addr(1, 10)

    @property
    def agent_root(self) -> Path:
        return self.work / "guest-root"

    @property
    def agent_command(self) -> str:
        return str(self.work / "bin/ssvm-agent")

    def target(self, host_key: str | None = None, address: str | None = None) -> GuestTarget:
        return GuestTarget("ssvm-sys", address or self.control, host_key or self.host_key.public_openssh,
                           agent_command=self.agent_command)


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def start_sshd(lab: GuestLab) -> None:
    work = lab.work
    host_key = _write(work / "sshd/host_ed25519", lab.host_key.private_openssh, 0o600)
    keys = _write(work / "authorized_keys", lab.operator_key.public_openssh + "\n", 0o600)
    config = _write(work / "sshd/sshd_config", textwrap.dedent(f"""\
        Port 3922
        ListenAddress 0.0.0.0
        HostKey {host_key}
        AuthorizedKeysFile {keys}
        PermitRootLogin prohibit-password
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        PidFile {work}/sshd/sshd.pid
        SetEnv SSVM_AGENT_ROOT={lab.agent_root} SSVM_AGENT_AUTHORIZED_KEYS={keys}
        LogLevel ERROR
        """))
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    sh(SSHD, "-t", "-f", str(config))
    lab.net.spawn(lab.ssvm_ns, SSHD, "-D", "-e", "-f", str(config), log_path=str(work / "sshd/sshd.log"))
    wait_for(lambda: tcp_open(lab.control, 3922), 15, "sshd on 3922")


def install_agent(lab: GuestLab) -> Path:
    archive = build_zipapp(lab.work / "bin/ssvm-agent.pyz")
    _write(lab.work / "bin/ssvm-agent", f'#!/bin/sh\nexec /usr/bin/python3 -I {archive} "$@"\n', 0o755)
    return archive


def start_copy_server(lab: GuestLab, archive: Path) -> None:
    lab.net.spawn(lab.ssvm_ns, "/usr/bin/python3", "-I", str(archive), "--root", str(lab.agent_root), "serve",
                  "--port", "80", log_path=str(lab.work / "copy-server.log"))
    wait_for(lambda: (lab.agent_root / "var/lib/ssvm-agent/copy-server.json").exists(), 15, "copy server")


def start_ganesha(lab: GuestLab) -> str:
    export = lab.work / "nfs-export"
    (export / "template").mkdir(parents=True, exist_ok=True)
    (export / "template/ready.txt").write_text("exported by nfs-ganesha\n")
    config = _write(lab.work / "ganesha/ganesha.conf", textwrap.dedent(f"""\
        NFS_CORE_PARAM {{ Protocols = 4; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; }}
        NFSV4 {{ Graceless = true; RecoveryBackend = fs; }}
        EXPORT {{
          Export_Id = 1; Path = {export}; Pseudo = /export; Access_Type = RW; Squash = No_Root_Squash;
          Protocols = 4; Transports = TCP; SecType = sys;
          FSAL {{ Name = VFS; }}
        }}
        """))
    lab.net.spawn(lab.nfs_ns, GANESHA, "-F", "-f", str(config), "-L", str(lab.work / "ganesha/ganesha.log"),
                  "-p", str(lab.work / "ganesha/ganesha.pid"), "-N", "NIV_EVENT")
    url = f"nfs://{lab.nfs_server}/export?version=4"
    wait_for(lambda: lab.net.exec(lab.ssvm_ns, "nfs-ls", url, check=False, timeout=10).returncode == 0,
             30, "nfs-ganesha export", interval=0.5)
    return f"nfs://{lab.nfs_server}/export"


def build(net: NetLab, work: Path) -> GuestLab:
    lab = GuestLab(net, work, generate_keypair("operator"), generate_keypair("ssvm-sys host key"),
                   net.netns("ssvm"), net.netns("pok"), net.netns("pbad"), net.netns("nfs"), net.netns("edge"))
    net.link(None, "", lab.operator_side, lab.ssvm_ns, "eth0", lab.control)     # control/management
    net.link(lab.ssvm_ns, "eth1", lab.ssvm_public_ok, lab.peer_ok_ns, "eth0", lab.peer_ok)
    net.link(lab.ssvm_ns, "eth2", lab.ssvm_public_bad, lab.peer_bad_ns, "eth0", lab.peer_bad)
    net.link(lab.ssvm_ns, "eth3", net.addr(1, 9), lab.nfs_ns, "eth0", lab.nfs_server)  # storage
    net.link(None, "", net.addr(0, 5), lab.edge_ns, "eth0", lab.edge)
    return lab
