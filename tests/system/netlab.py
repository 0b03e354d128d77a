"""Network namespaces for system tests: unique names per run, torn down even when a test fails.

Traffic stays inside namespaces this module creates (and the veth ends it adds to the test's own
namespace); addresses come from 198.18.0.0/15, the range reserved for such test networks.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field

from tests.processes import stop_process


def sh(*argv: str, check: bool = True, timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout, input=input)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g}s")
        time.sleep(interval)


def tcp_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class NetLab:
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)
    _links: int = 0

    def __post_init__(self):
        self.octet = int(self.tag[:2], 16)  # a per-run /24 so parallel runs do not collide

    def addr(self, net: int, host: int) -> str:
        """198.18.<run>.<host> for net 0 (reached from the test), 198.19.<run>.<host> otherwise."""
        return f"198.{18 + (net > 0)}.{self.octet}.{host}"

    def netns(self, role: str) -> str:
        name = f"{role}-{self.tag}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def link(self, ns_a: str | None, if_a: str, addr_a: str, ns_b: str, if_b: str, addr_b: str, prefix: int = 30) -> None:
        """A veth pair; ns_a None means the test's own namespace (the operator's side)."""
        self._links += 1
        tmp_a, tmp_b = f"v{self.tag}{self._links}a", f"v{self.tag}{self._links}b"
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        for ns, tmp, name, address in ((ns_a, tmp_a, if_a, addr_a), (ns_b, tmp_b, if_b, addr_b)):
            if ns is None:
                self.root_links.append(tmp)
                sh("ip", "addr", "add", f"{address}/{prefix}", "dev", tmp)
                sh("ip", "link", "set", tmp, "up")
                continue
            sh("ip", "link", "set", tmp, "netns", ns)
            sh("ip", "-n", ns, "link", "set", tmp, "name", name)
            sh("ip", "-n", ns, "addr", "add", f"{address}/{prefix}", "dev", name)
            sh("ip", "-n", ns, "link", "set", name, "up")

    def exec(self, ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, *argv, **kw)

    def spawn(self, ns: str, *argv: str, log_path: str | None = None) -> subprocess.Popen:
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        self.processes.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.processes):
            stop_process(proc, grace=5)
        for ns in reversed(self.namespaces):
            # Processes we did not start directly (sshd sessions) must not keep the namespace busy.
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)
        for link in self.root_links:
            sh("ip", "link", "del", link, check=False)
