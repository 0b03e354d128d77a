"""The package's dependency rules (docs/architecture.md), read from the import statements."""
from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "operator" / "ssvm_operator"
# Planners and plain values: observed state in, plans out; no kopf and no Kubernetes client, even indirectly.
PURE = [
    "api", "admission", "model",
    "controllers/zone/capacity.py", "controllers/zone/readiness.py", "controllers/zone/rollout.py", "controllers/zone/objects.py",
    "controllers/ssvm/lifecycle.py", "controllers/ssvm/start_timeout.py",
    "controllers/guest/actions.py", "controllers/guest/hashing.py", "controllers/guest/mesh.py", "controllers/guest/status.py",
    "controllers/template/plan.py", "controllers/template/status.py",
]


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py") if "agent" not in p.relative_to(PACKAGE).parts}
IMPORTS = {m: _imports(p) for m, p in MODULES.items()}


def _ours(names: set[str]) -> set[str]:
    return {n for n in names if n in MODULES}


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_ours(IMPORTS[m]))
    return seen


def _third_party(module: str) -> set[str]:
    return {n.split(".")[0] for n in IMPORTS[module] if not n.startswith("ssvm_operator")}


def _selected(spec: str) -> list[str]:
    prefix = "ssvm_operator." + spec.removesuffix(".py").replace("/", ".")
    return sorted(m for m in MODULES if m == prefix or m.startswith(prefix + "."))


@pytest.mark.parametrize("spec", PURE)
def test_pure_modules_import_neither_kopf_nor_the_kubernetes_client(spec):
    modules = _selected(spec)
    assert modules, f"{spec} names no module"
    for module in modules:
        for dep in _closure(module):
            bad = _third_party(dep) & {"kopf", "kubernetes"}
            assert not bad, f"{module} reaches {bad} through {dep}"


def test_only_the_kube_layer_imports_the_kubernetes_client():
    users = sorted(m for m in MODULES if "kubernetes" in _third_party(m))
    assert users and all(m.startswith("ssvm_operator.kube.") for m in users), users


def test_kopf_modules_are_imported_by_the_registration_only():
    kopf_modules = {m for m in MODULES if m.endswith(".controller") and m.startswith("ssvm_operator.controllers.")}
    assert len(kopf_modules) == 4
    for module, names in IMPORTS.items():
        if module != "ssvm_operator.controllers.registration":
            assert not _ours(names) & kopf_modules, f"{module} imports {_ours(names) & kopf_modules}"


@pytest.mark.parametrize("lower, forbidden", [
    ("model", ("controllers", "kube", "backends", "ssh", "commands")),
    ("api", ("controllers", "kube", "backends", "ssh", "commands", "model")),
    ("kube", ("controllers", "backends", "ssh", "commands")),
    ("ssh", ("controllers", "kube", "backends", "commands")),
    ("backends", ("controllers", "commands")),
    ("controllers", ("commands",)),
])
def test_dependencies_point_one_way(lower, forbidden):
    for module in _selected(lower):
        for dep in _ours(IMPORTS[module]) - {"ssvm_operator"}:
            layer = dep.split(".")[1]
            assert layer not in forbidden, f"{module} imports upward: {dep}"


def test_the_operator_imports_no_dev_cluster_and_no_test_double():
    for module, names in IMPORTS.items():
        assert not {n for n in names if n.startswith(("ssvm_devcluster", "tests", "kmock"))}, module
