"""Writes operator/ssvm_devcluster/kubevirt_schemas.json: the published schemas of KubeVirt's, CDI's and
Multus' kinds (shared/schemas, beside the repository) in the structural form their CRDs need."""
from __future__ import annotations

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from ssvm_devcluster.kubevirt_crds import KINDS, SCHEMAS_FILE, structural  # noqa: E402

SHARED = ROOT.parent / "shared" / "schemas"


def render() -> str:
    schemas = {source: structural(json.loads((SHARED / source).read_text())) for *_, source in KINDS}
    return json.dumps(schemas, sort_keys=True, separators=(",", ":")) + "\n"


if __name__ == "__main__":
    SCHEMAS_FILE.write_text(render())
    print(f"wrote {SCHEMAS_FILE.relative_to(ROOT)} ({SCHEMAS_FILE.stat().st_size // 1024} KiB)")
