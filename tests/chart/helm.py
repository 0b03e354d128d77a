"""Running the real helm binary on the chart, for tests and hack scripts."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from typing import Any, Iterable

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ssvm-operator"
SCHEMAS = ROOT.parent / "shared" / "schemas"
RELEASE, NAMESPACE = "ssvm", "ssvm-system"


def helm_binary() -> str:
    """hack/setup.sh installs helm into .tools/bin; a helm on PATH is the fallback."""
    local = ROOT / ".tools" / "bin" / "helm"
    if local.exists():
        return str(local)
    found = shutil.which("helm")
    if not found:
        raise RuntimeError("no helm binary: run bash hack/setup.sh (installs .tools/bin/helm)")
    return found


def _env() -> dict[str, str]:
    # helm writes its caches and config under HOME; keep them out of the user's.
    cache = ROOT / ".tools" / "helm-home"
    return {**os.environ, "HELM_CACHE_HOME": str(cache / "cache"), "HELM_CONFIG_HOME": str(cache / "config"),
            "HELM_DATA_HOME": str(cache / "data")}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, env=_env(), timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def values_args(values_files: Iterable[pathlib.Path] = (), sets: Iterable[str] = ()) -> list[str]:
    out: list[str] = []
    for f in values_files:
        out += ["-f", str(f)]
    for s in sets:
        out += ["--set", s]
    return out


def template_args(values_files: Iterable[pathlib.Path] = (), sets: Iterable[str] = (), include_crds: bool = False) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, *values_args(values_files, sets)]
    return args + (["--include-crds"] if include_crds else [])


def render(values_files: Iterable[pathlib.Path] = (), sets: Iterable[str] = (), include_crds: bool = False) -> list[dict[str, Any]]:
    """The manifests `helm template` renders, as dicts (empty documents dropped)."""
    out = helm(*template_args(values_files, sets, include_crds)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def ci_values() -> list[pathlib.Path]:
    return sorted((CHART / "ci").glob("*.yaml"))


def by_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]
