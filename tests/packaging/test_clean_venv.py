"""The image's venv, built the way the Dockerfile builds it, runs the operator's commands without dev extras.

The Dockerfile's build-stage COPY and RUN lines are replayed in a temporary folder (with /opt/ssvm
mapped to a temporary venv); pip's own cache is reused so that the run stays short.
"""
from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.manifests import ROOT

from . import dockerfile

VENV_IN_IMAGE = "/opt/ssvm"


def _ignored(patterns: set[str]):
    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in patterns or n == "__pycache__" or n.endswith((".pyc", ".egg-info"))}
    return ignore


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory) -> pathlib.Path:
    _, _, stages = dockerfile.load(ROOT / "Dockerfile")
    build = stages[0]
    tmp = tmp_path_factory.mktemp("image")
    venv = tmp / "venv"
    workdir = tmp / "context"
    workdir.mkdir()
    ignore = _ignored({".git", ".venv", ".tools", "build", "dist"})
    for ins in build.instructions:
        if ins.keyword == "WORKDIR":
            continue  # the context folder plays /src
        if ins.keyword == "COPY":
            *sources, dest = shlex.split(ins.args)
            for src in sources:
                target = workdir / dest if not dest.endswith("/") else workdir / dest / pathlib.Path(src).name
                if (ROOT / src).is_dir():
                    shutil.copytree(ROOT / src, workdir / dest.rstrip("/"), ignore=ignore)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / src, target)
        elif ins.keyword == "RUN":
            command = ins.args.replace(VENV_IN_IMAGE, str(venv))
            # the image's `python` is the base interpreter, not this test's venv
            command = re.sub(r"(^|&&\s*)python ", lambda m: f"{m.group(1)}{shlex.quote(sys._base_executable)} ", command)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
            env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"  # PIP_NO_CACHE_DIR left out: reuse pip's cache here
            proc = subprocess.run(["bash", "-c", command], cwd=workdir, env=env, capture_output=True, text=True, timeout=280)
            assert proc.returncode == 0, f"RUN failed:\n{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return venv


def _run(venv: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd="/", timeout=60)


def test_run_help_works_from_the_clean_venv(image_venv):
    proc = _run(image_venv, str(image_venv / "bin" / "ssvm-operator"), "run", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--liveness" in proc.stdout and "--metrics-port" in proc.stdout


def test_crds_command_prints_the_crds_from_the_clean_venv(image_venv):
    proc = _run(image_venv, str(image_venv / "bin" / "ssvm-operator"), "crds")
    assert proc.returncode == 0, proc.stderr
    expected = "---\n".join(p.read_text().split("\n", 1)[1] for p in sorted((ROOT / "crds").glob("*.yaml")))
    assert sorted(proc.stdout.split("---\n")) == sorted(expected.split("---\n"))


def test_dev_extras_are_not_installed(image_venv):
    probe = "import importlib.util as u; print([m for m in ('kmock', 'pytest', 'celpy', 'lupa', 'ssvm_devcluster') if u.find_spec(m)])"
    proc = _run(image_venv, str(image_venv / "bin" / "python"), "-c", probe)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_package_is_installed_not_linked_to_the_checkout(image_venv):
    proc = _run(image_venv, str(image_venv / "bin" / "python"), "-c", "import ssvm_operator; print(ssvm_operator.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert str(image_venv) in proc.stdout and str(ROOT) not in proc.stdout
