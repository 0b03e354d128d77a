"""Loopback ranges for the simulated guests' control addresses, one per dev cluster on the machine: a
range is leased by holding an exclusive lock on a file named after it, so a second dev cluster (another
demo, a test run) takes the next free one instead of fighting over the same addresses."""
from __future__ import annotations

import fcntl
import ipaddress
import os
import tempfile
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "ssvm-devcluster-ranges"
CANDIDATES = tuple(f"127.{second}.0.0/16" for second in range(100, 200))   # tests pin their own below 127.100


class RangeLease:
    """A control range held until `release()` (or the process ends: the kernel drops the lock)."""

    def __init__(self, cidr: str, handle: int | None = None) -> None:
        self.cidr, self._handle = cidr, handle

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)   # closing the descriptor drops the lock
            self._handle = None


def check_range(cidr: str) -> str:
    """A CIDR inside 127.0.0.0/8 (simulated guests bind their addresses on loopback), normalised."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as e:
        raise ValueError(f"not a CIDR: {cidr!r}") from e
    if net.version != 4 or not net.subnet_of(ipaddress.ip_network("127.0.0.0/8")) or net.prefixlen > 24:
        raise ValueError(f"{cidr}: the simulated control range must be a /24 or larger inside 127.0.0.0/8")
    return str(net)


def lease_control_range(requested: str | None = None, lock_dir: Path = LOCK_DIR) -> RangeLease:
    """The range asked for (no lock), or the first candidate no other dev cluster on this machine holds."""
    if requested:
        return RangeLease(check_range(requested))
    lock_dir.mkdir(parents=True, exist_ok=True)
    for cidr in CANDIDATES:
        handle = os.open(lock_dir / cidr.replace("/", "_"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue
        return RangeLease(cidr, handle)
    raise RuntimeError(f"every simulated control range ({CANDIDATES[0]} to {CANDIDATES[-1]}) is held by another dev cluster")
