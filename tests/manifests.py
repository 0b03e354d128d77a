"""Reading the repository's manifests (examples/, crds/) for tests."""
from __future__ import annotations

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def example_documents() -> list[tuple[str, dict]]:
    """(id, document) for every document in examples/, in file order."""
    docs = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


def crd_schemas() -> dict[str, dict]:
    """openAPIV3Schema per kind, read from the committed crds/ (what users apply)."""
    out = {}
    for path in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        out[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return out


def hack_module(name: str):
    """A generator script of hack/ (e.g. "gen_crds"), imported so tests can compare its output with the files."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "hack" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
