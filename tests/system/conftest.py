"""System-test fixtures shared by modules: the SSVM image."""
from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

PROJECT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ssvm_image() -> pathlib.Path:
    """The image hack/test.sh built (SSVM_IMAGE), else built (or found in the cache) now."""
    if os.environ.get("SSVM_IMAGE"):
        return pathlib.Path(os.environ["SSVM_IMAGE"])
    done = subprocess.run(["bash", str(PROJECT / "hack/ssvm-image/build.sh")], capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-2000:]
    return pathlib.Path(done.stdout.strip().splitlines()[-1])
