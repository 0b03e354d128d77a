"""Every condition reason the code can set is documented in troubleshooting.md: the reasons are read from
the source (the constructors and helpers that carry a reason, the channel's error classes, and the
(status, reason, message) tuples), so a reason added to the code without a line in the docs fails here."""
from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = ROOT / "operator" / "ssvm_operator"
# callee -> position of its reason argument
CALLS = {"CondSpec": 2, "set_condition": 3, "GateResult": 1, "KeyMaterialError": 0, "BackendError": 0,
         "BackendReadiness": 2, "AgentError": 0, "_referenced_or_made": 3, "secret_value": 2}
WORD = re.compile(r"^[A-Z][A-Za-z0-9]+$")
STATUSES = ("True", "False", "Unknown")


def _text(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def reasons_in(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            i = CALLS.get(name)
            if i is not None and len(node.args) > i and _text(node.args[i]):
                found.add(_text(node.args[i]))
        elif isinstance(node, ast.Tuple) and len(node.elts) >= 2 and _text(node.elts[0]) in STATUSES and _text(node.elts[1]):
            found.add(_text(node.elts[1]))   # (status, reason, message)
        elif (isinstance(node, ast.Tuple) and len(node.elts) == 2 and _text(node.elts[0]) and isinstance(node.elts[1], ast.Tuple)
              and node.elts[1].elts and all(_text(e) for e in node.elts[1].elts)):
            found.add(_text(node.elts[0]))   # (reason, (words that classify it, ...))
        elif isinstance(node, ast.Dict):
            for v in node.values:   # {phase: (reason, "message.")}
                if isinstance(v, ast.Tuple) and len(v.elts) == 2 and _text(v.elts[0]) and (_text(v.elts[1]) or "").endswith("."):
                    found.add(_text(v.elts[0]))
        elif isinstance(node, ast.ClassDef):
            for st in node.body:   # class SomethingError: reason = "Something"
                if isinstance(st, ast.Assign) and any(getattr(t, "id", "") == "reason" for t in st.targets) and _text(st.value):
                    found.add(_text(st.value))
    return {r for r in found if WORD.match(r) and r not in STATUSES}


def test_the_scan_finds_reasons_it_must():
    code = {r for path in SOURCE.rglob("*.py") for r in reasons_in(ast.parse(path.read_text()))}
    assert {"HostKeyMismatch", "SSVMsFailing", "CopyPasswordSecretNotFound", "NoRunningSSVM", "VMStarting", "ExportNotFound"} <= code


def test_every_reason_the_code_sets_is_in_troubleshooting():
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    missing = {}
    for path in SOURCE.rglob("*.py"):
        for reason in reasons_in(ast.parse(path.read_text())):
            if f"`{reason}`" not in text:
                missing.setdefault(reason, []).append(str(path.relative_to(SOURCE)))
    assert not missing, f"reasons the code sets that docs/troubleshooting.md does not explain: {missing}"
