"""The effect layer: the only place that mounts, runs iptables or changes routes.

`RealEffects` runs the real commands; `SimulatedEffects` records the same operations under the
simulated guest's state dir. The actions' logic is written once against `Effects`.
"""
from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ssvm_operator.agent import iptables_model
from ssvm_operator.agent.fileio import read_json, write_json
from ssvm_operator.agent.paths import AgentPaths


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class MountEntry:
    source: str
    fstype: str
    options: str


@dataclass(frozen=True)
class Probe:
    """What a look at a mounted store found: `state` is ok, stale, readonly, missing, timeout or error."""
    state: str
    detail: str = ""


class Effects(Protocol):
    simulated: bool

    def mounts(self) -> dict[str, MountEntry]: ...
    def nfs_client_support(self) -> tuple[bool, str]: ...
    def mount(self, source: str, target: Path, fstype: str, options: list[str], timeout: float) -> CommandResult: ...
    def umount(self, target: Path, timeout: float) -> CommandResult: ...
    def probe(self, path: Path, timeout: float) -> Probe: ...
    def iptables_save(self) -> str: ...
    def iptables_restore(self, text: str) -> CommandResult: ...
    def iptables_rules(self) -> list[str]: ...
    def route_replace(self, cidr: str, gateway: str, device: str) -> CommandResult: ...
    def route_delete(self, cidr: str) -> CommandResult: ...
    def route_table(self) -> list[str]: ...


def run(argv: list[str], timeout: float, stdin: str | None = None) -> CommandResult:
    """Run a command with a bound on its time; a missing binary or a timeout is a result, not a crash."""
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return CommandResult(127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"{argv[0]}: timed out after {timeout:g}s")
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


def probe_directory(path: Path, timeout: float) -> Probe:
    """stat, then create and delete a file, in a thread: a hung NFS server must not hang the agent."""
    outcome: list[Probe] = []

    def look() -> None:
        try:
            os.stat(path)
            if not os.path.isdir(path):
                outcome.append(Probe("missing", "not a directory"))
                return
            marker = path / f".ssvm-agent-probe-{uuid.uuid4().hex}"
            with open(marker, "w") as fh:
                fh.write("ok")
            os.unlink(marker)
            outcome.append(Probe("ok"))
        except OSError as exc:
            state = {errno.ESTALE: "stale", errno.EROFS: "readonly", errno.EACCES: "readonly",
                     errno.ENOENT: "missing"}.get(exc.errno, "error")
            outcome.append(Probe(state, exc.strerror or str(exc)))

    worker = threading.Thread(target=look, daemon=True)  # daemon: a stuck stat dies with the process
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else Probe("timeout", f"no answer from the file system in {timeout:g}s")


def _unescape_mount_field(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


class RealEffects:
    simulated = False

    def __init__(self, paths: AgentPaths, command_timeout: float = 30.0):
        self.paths = paths
        self.command_timeout = command_timeout

    def mounts(self) -> dict[str, MountEntry]:
        entries: dict[str, MountEntry] = {}
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4:
                entries[_unescape_mount_field(parts[1])] = MountEntry(parts[0], parts[2], parts[3])
        return entries

    def nfs_client_support(self) -> tuple[bool, str]:
        if self._kernel_knows_nfs():
            return True, ""
        # The module may just not be loaded yet: ask for it once.
        probe = run(["modprobe", "-q", "nfs"], timeout=self.command_timeout)
        if self._kernel_knows_nfs():
            return True, ""
        why = probe.stderr.strip() or "module nfs not available"
        return False, f"the kernel has no NFS client (nfs missing from /proc/filesystems; modprobe: {why})"

    @staticmethod
    def _kernel_knows_nfs() -> bool:
        try:
            names = {line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines() if line.strip()}
        except OSError:
            return False
        return bool(names & {"nfs", "nfs4"})

    def mount(self, source, target, fstype, options, timeout):
        argv = ["mount", "-t", fstype]
        if options:
            argv += ["-o", ",".join(options)]
        return run(argv + [source, str(target)], timeout=timeout)

    def umount(self, target, timeout):
        # -f aborts hung NFS requests, -l detaches even if busy: what a stale handle needs.
        result = run(["umount", "-f", str(target)], timeout=timeout)
        if not result.ok:
            result = run(["umount", "-l", str(target)], timeout=timeout)
        return result

    def probe(self, path, timeout):
        return probe_directory(path, timeout)

    def iptables_save(self):
        result = run(["iptables-save", "-t", "filter"], timeout=self.command_timeout)
        if not result.ok:
            raise OSError(f"iptables-save failed: {result.stderr.strip()}")
        return result.stdout

    def iptables_restore(self, text):
        return run(["iptables-restore", "--noflush"], timeout=self.command_timeout, stdin=text)

    def iptables_rules(self):
        result = run(["iptables", "-S"], timeout=self.command_timeout)
        return result.stdout.splitlines()

    def route_replace(self, cidr, gateway, device):
        return run(["ip", "route", "replace", cidr, "via", gateway, "dev", device], timeout=self.command_timeout)

    def route_delete(self, cidr):
        return run(["ip", "route", "del", cidr], timeout=self.command_timeout)

    def route_table(self):
        return run(["ip", "route", "show"], timeout=self.command_timeout).stdout.splitlines()


class SimulatedEffects:
    """Records mounts, rules and routes as JSON under `<state>/var/lib/ssvm-agent/simulated/`.

    A simulated mount is a plain directory at the mount point, or, when `settings.json` there names an
    `exportsRoot`, a link to that export's directory under it: the guests of one dev cluster then share
    each store as NFS clients do. `faults.json` there lets a test or the dev cluster inject failures:
    {"mount": {"host:/path": "<mount.nfs stderr>"}, "nfsClient": false}.
    """
    simulated = True

    def __init__(self, paths: AgentPaths):
        self.paths = paths
        self.dir = paths.sim

    def _faults(self) -> dict:
        return read_json(self.dir / "faults.json", {})

    def _mount_table(self) -> dict:
        return read_json(self.dir / "mounts.json", {})

    def mounts(self):
        return {t: MountEntry(m["source"], m["fstype"], m["options"]) for t, m in self._mount_table().items()}

    def nfs_client_support(self):
        if self._faults().get("nfsClient", True):
            return True, ""
        return False, "the kernel has no NFS client (simulated)"

    def mount(self, source, target, fstype, options, timeout):
        failure = self._faults().get("mount", {}).get(source)
        if failure:
            return CommandResult(32, "", failure)
        table = self._mount_table()
        if str(target) in table:
            return CommandResult(32, "", f"mount: {target}: already mounted")
        exports = read_json(self.dir / "settings.json", {}).get("exportsRoot")
        if exports:
            shared = export_dir(Path(exports), source)
            shared.mkdir(parents=True, exist_ok=True)
            if Path(target).is_dir() and not Path(target).is_symlink():
                Path(target).rmdir()   # the empty mount point becomes the link
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).symlink_to(shared, target_is_directory=True)
        Path(target).mkdir(parents=True, exist_ok=True)
        table[str(target)] = {"source": source, "fstype": fstype, "options": ",".join(options), "stale": False}
        write_json(self.dir / "mounts.json", table)
        return CommandResult(0)

    def umount(self, target, timeout):
        table = self._mount_table()
        if table.pop(str(target), None) is None:
            return CommandResult(32, "", f"umount: {target}: not mounted")
        write_json(self.dir / "mounts.json", table)
        if Path(target).is_symlink():
            Path(target).unlink()
            Path(target).mkdir()   # an empty mount point is left, as after umount
        return CommandResult(0)

    def probe(self, path, timeout):
        entry = self._mount_table().get(str(path))
        if entry and entry.get("stale"):
            return Probe("stale", "Stale file handle (simulated)")
        return probe_directory(path, timeout)

    def mark_stale(self, target: Path) -> None:
        """Test and dev-cluster hook: make a recorded mount answer like an NFS stale handle."""
        table = self._mount_table()
        table[str(target)]["stale"] = True
        write_json(self.dir / "mounts.json", table)

    def _table(self) -> iptables_model.Table:
        data = read_json(self.dir / "iptables.json", None)
        return iptables_model.Table.from_json(data) if data else iptables_model.Table.empty()

    def iptables_save(self):
        table = self._table()
        lines = ["*filter"]
        lines += [f":{c} {table.policies.get(c, '-')} [0:0]" for c in table.chains]
        lines += [f"-A {c} {r}" for c, rules in table.chains.items() for r in rules]
        return "\n".join(lines + ["COMMIT", ""])

    def iptables_restore(self, text):
        try:
            new = iptables_model.apply_restore(self._table(), text)
        except iptables_model.RestoreError as exc:
            return CommandResult(1, "", f"iptables-restore: {exc}")
        write_json(self.dir / "iptables.json", new.to_json())
        return CommandResult(0)

    def iptables_rules(self):
        return self._table().render_rules()

    def _routes(self) -> dict:
        return read_json(self.dir / "routes.json", {})

    def route_replace(self, cidr, gateway, device):
        routes = self._routes()
        routes[cidr] = {"via": gateway, "dev": device}
        write_json(self.dir / "routes.json", routes)
        return CommandResult(0)

    def route_delete(self, cidr):
        routes = self._routes()
        if routes.pop(cidr, None) is None:
            return CommandResult(2, "", "RTNETLINK answers: No such process")
        write_json(self.dir / "routes.json", routes)
        return CommandResult(0)

    def route_table(self):
        return [f"{cidr} via {r['via']} dev {r['dev']}" for cidr, r in sorted(self._routes().items())]


def export_dir(exports: Path, source: str) -> Path:
    """A simulated export's shared directory: named by a digest, so nothing of the URL becomes a path."""
    return exports / hashlib.sha256(source.encode()).hexdigest()[:24]


def make_effects(paths: AgentPaths, simulated: bool) -> Effects:
    return SimulatedEffects(paths) if simulated else RealEffects(paths)
