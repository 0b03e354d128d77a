"""Subprocesses in tests: a command run against a kubeconfig with its output in a log, stopped politely."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
from typing import Mapping, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]


def start_with_kubeconfig(args: Sequence[str], kubeconfig: str | os.PathLike, log: pathlib.Path,
                          env: Mapping[str, str] | None = None, append: bool = False) -> subprocess.Popen:
    """Starts `args` with KUBECONFIG set, stdout and stderr into `log`, from the repository root."""
    full_env = {**os.environ, **(env or {}), "KUBECONFIG": str(kubeconfig)}
    out = log.open("ab" if append else "wb")
    try:
        return subprocess.Popen(list(args), env=full_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    finally:
        out.close()  # the child holds its own descriptor


def stop_process(proc: subprocess.Popen, grace: float = 20.0, sig: int = signal.SIGTERM) -> int:
    """Sends `sig`, waits `grace` seconds for a clean exit, then kills; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout=10)
