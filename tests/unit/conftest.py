from __future__ import annotations

import pytest

from ssvm_operator.api.crd import KINDS
from tests.manifests import crd_schemas as _crd_schemas


@pytest.fixture(scope="session")
def crd_schemas() -> dict[str, dict]:
    schemas = _crd_schemas()
    assert set(schemas) == {info.kind for info in KINDS}, "crds/ is missing a kind: run hack/gen_crds.py"
    return schemas
