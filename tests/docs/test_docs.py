"""The docs: generated pages up to date, and hand-written pages covering what the code has."""
from __future__ import annotations

import re

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.manifests import ROOT, hack_module

DOCS = ROOT / "docs"


def test_generated_docs_are_up_to_date():
    for path, text in hack_module("gen_docs").expected_files().items():
        assert path.exists() and path.read_text() == text, f"{path.name} is stale: run .venv/bin/python hack/gen_docs.py"


def test_every_zone_field_names_the_cloudstack_setting_it_replaces():
    gen = hack_module("gen_docs")
    assert gen.missing_cloudstack() == []
    assert len(gen.zone_paths()) > 30
    stale = [k for k in gen.CLOUDSTACK if "*" not in k and k not in gen.zone_paths()]
    assert not stale, f"CLOUDSTACK entries for fields that no longer exist: {stale}"


def test_api_reference_lists_every_field_of_every_kind():
    from ssvm_operator.api.crd import KINDS

    gen = hack_module("gen_docs")
    text = (DOCS / "api-reference.md").read_text()
    for info in KINDS:
        schema = gen._schema(info)
        for part in ("spec", "status"):
            for path, _, _ in gen.walk(schema["properties"][part]):
                assert f"`{path}`" in text, f"{info.kind}.{part}.{path}"


def test_troubleshooting_explains_every_terminal_reason():
    text = (DOCS / "troubleshooting.md").read_text()
    argocd = (DOCS / "install-argocd.md").read_text()
    for kind, reasons in hack_module("gen_argocd").TERMINAL_REASONS.items():
        for reason in reasons:
            assert f"`{reason}`" in text, f"troubleshooting.md lacks {reason} ({kind})"
            assert reason in argocd


def test_troubleshooting_lists_the_zone_readiness_reasons_and_events():
    import inspect

    from ssvm_operator.controllers.zone import readiness
    from ssvm_operator.kube import events

    text = (DOCS / "troubleshooting.md").read_text()
    reasons = re.findall(r'CondSpec\(\w+, "False", "([A-Za-z]+)"', inspect.getsource(readiness))
    assert len(reasons) >= 5
    for reason in reasons:
        assert f"`{reason}`" in text, reason
    for value in events.REASONS:
        assert f"`{value}`" in text, value


def test_metrics_page_lists_every_metric():
    from ssvm_operator.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    text = (DOCS / "metrics.md").read_text()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in text, name


def test_helm_page_documents_every_top_level_value():
    values = yaml.safe_load((ROOT / "charts" / "ssvm-operator" / "values.yaml").read_text())
    text = (DOCS / "install-helm.md").read_text()
    for key in values:
        assert f"`{key}" in text, key


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_local_links_resolve(page):
    text = (DOCS / page).read_text()
    for target in re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (DOCS / target).exists(), f"{page} links to missing {target}"


def test_no_page_speaks_of_the_projects_history_or_unfinished_work():
    import re

    pattern = re.compile(r"not done yet|status of this page|\bissue #?\d+|\bTODO\b|\bFIXME\b|will be added|in a later", re.I)
    pages = [*DOCS.glob("*.md"), DOCS.parent / "README.md"]
    found = [f"{p.name}: {m.group(0)}" for p in pages for m in pattern.finditer(p.read_text())]
    assert not found, found
