"""The admission table (tests/unit/test_admission.py) judged by the real kube-apiserver: every refusal
and every accepted variant applied with the real kubectl (server-side dry run), so the CRDs' structural
schema and CEL rules are evaluated by Kubernetes itself, not by the project's admission engine."""
from __future__ import annotations

import copy

import pytest
import yaml

from tests.manifests import example_documents
from tests.unit.test_admission import ACCEPTED, BASE, IMMUTABLE, REFUSED, with_fields



def _apply(real, namespace: str, doc: dict, *, dry_run: bool = True, check: bool = False):
    args = ["apply", "-n", namespace, "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    return real.kubectl(*args, input=yaml.safe_dump(doc), check=check)


@pytest.mark.parametrize("case,kind,fields,field,words", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_by_the_real_api_server_naming_the_field(case, kind, fields, field, words, real, real_namespace):
    proc = _apply(real, real_namespace, with_fields(kind, **fields))
    assert proc.returncode != 0, f"{case}: the real API server admitted it"
    assert field in proc.stderr, f"{case}: {proc.stderr}"
    assert words in proc.stderr, f"{case}: {proc.stderr}"


@pytest.mark.parametrize("case,kind,fields", ACCEPTED, ids=[r[0] for r in ACCEPTED])
def test_accepted_by_the_real_api_server(case, kind, fields, real, real_namespace):
    proc = _apply(real, real_namespace, with_fields(kind, **fields))
    assert proc.returncode == 0, proc.stderr


def test_examples_are_accepted_by_the_real_api_server(real, real_namespace):
    for name, doc in example_documents():
        doc = copy.deepcopy(doc)
        doc["metadata"].pop("namespace", None)
        proc = _apply(real, real_namespace, doc)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"


@pytest.mark.parametrize("case,kind,fields,field", IMMUTABLE, ids=[r[0] for r in IMMUTABLE])
def test_immutable_fields_are_refused_by_the_real_api_server(case, kind, fields, field, real, real_namespace):
    _apply(real, real_namespace, copy.deepcopy(BASE[kind]), dry_run=False, check=True)
    proc = _apply(real, real_namespace, with_fields(kind, **fields))
    assert proc.returncode != 0 and field in proc.stderr and "immutable" in proc.stderr, proc.stderr
    assert _apply(real, real_namespace, copy.deepcopy(BASE[kind])).returncode == 0
