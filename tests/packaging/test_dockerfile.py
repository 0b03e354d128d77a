"""The Dockerfile, checked statically with hadolint-style rules (no Docker engine runs here)."""
from __future__ import annotations

import re
import shlex

import pytest

from tests.manifests import ROOT

from . import dockerfile

DOCKERFILE = ROOT / "Dockerfile"
INSTRUCTIONS, ARGS, STAGES = dockerfile.load(DOCKERFILE)
FINAL = STAGES[-1]
SECRET_WORDS = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|API_?KEY|ACCESS_?KEY|CREDENTIAL)", re.I)


def _in(stage, keyword):
    return [i for i in stage.instructions if i.keyword == keyword]


def test_is_multi_stage_and_the_final_stage_copies_the_built_venv():
    assert len(STAGES) >= 2 and STAGES[0].name
    copies = [c for c in _in(FINAL, "COPY") if c.flags().get("from") == STAGES[0].name]
    assert copies, "the final stage takes the venv from the build stage"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name or "final")
def test_base_image_is_pinned(stage):
    # DL3006/DL3007: an exact tag (x.y.z) or a digest; never latest or a floating major.
    base = stage.base
    assert "$" not in base, f"unresolved ARG in FROM {base}"
    assert "@sha256:" in base or re.search(r":\d+\.\d+\.\d+[-\w.]*$", base), f"unpinned base image {base}"
    assert not base.endswith(":latest")
    assert "slim" in base


def test_runs_as_a_numeric_non_root_user():
    users = _in(FINAL, "USER")
    assert users, "the final stage must set USER"
    user = users[-1].args.split(":")
    assert user[0].isdigit() and int(user[0]) > 0, "USER must be a numeric uid, for runAsNonRoot"
    assert all(u.isdigit() and int(u) > 0 for u in user)
    # the user is set after every RUN, so nothing after it needs root
    last_user = FINAL.instructions.index(users[-1])
    assert not [i for i in FINAL.instructions[last_user:] if i.keyword == "RUN"]


def test_entrypoint_is_ssvm_operator_run_in_exec_form():
    (entry,) = [i for i in INSTRUCTIONS if i.keyword == "ENTRYPOINT"]
    assert entry.exec_form() == ["ssvm-operator", "run"]
    cmds = _in(FINAL, "CMD")
    assert all(c.exec_form() is not None for c in cmds), "DL3025: JSON form for CMD"


def test_has_a_healthcheck_on_the_kopf_liveness_endpoint():
    (check,) = _in(FINAL, "HEALTHCHECK")
    assert "/healthz" in check.args and "8080" in check.args


def test_no_secrets_in_the_image():
    for ins in INSTRUCTIONS:
        if ins.keyword in {"ENV", "ARG", "LABEL"}:
            names = [w.split("=")[0] for w in shlex.split(ins.args)]
            assert not any(SECRET_WORDS.search(n) for n in names), f"line {ins.line}: secret-like {ins.keyword} {names}"
        if ins.keyword in {"COPY", "ADD"}:
            assert not re.search(r"(\.pem|\.key|id_rsa|id_ed25519|\.ssh|kubeconfig|\.kube|\.env)\b", ins.args), f"line {ins.line}"


def test_copy_not_add_and_absolute_workdirs():
    assert not [i for i in INSTRUCTIONS if i.keyword == "ADD"], "DL3020: use COPY"
    assert all(i.args.startswith("/") for i in INSTRUCTIONS if i.keyword == "WORKDIR"), "DL3000: absolute WORKDIR"
    assert not [i for i in INSTRUCTIONS if i.keyword == "MAINTAINER"], "DL4000: MAINTAINER is deprecated"


def test_pip_installs_the_package_without_extras_and_without_cache():
    runs = " ".join(i.args for i in _in(STAGES[0], "RUN"))
    installs = re.findall(r"pip install ([^&;]+)", runs)
    assert installs, "the build stage pip-installs the package"
    for args in installs:
        assert "[" not in args, "no extras (devcluster, test) in the image"
        assert "-e" not in args.split(), "a real install, not an editable one"
        assert "--no-deps" not in args
    envs = " ".join(i.args for i in _in(STAGES[0], "ENV"))
    assert "PIP_NO_CACHE_DIR=1" in envs or all("--no-cache-dir" in a for a in installs), "DL3042"


def test_no_package_manager_leftovers_and_no_sudo():
    text = " ".join(i.args for i in INSTRUCTIONS if i.keyword == "RUN")
    assert "sudo " not in text, "DL3004"
    if "apt-get install" in text:
        assert "--no-install-recommends" in text and "rm -rf /var/lib/apt/lists" in text


def test_only_tmp_is_written_at_run_time():
    env = " ".join(i.args for i in _in(FINAL, "ENV"))
    for var in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp"):
        assert var in env
    assert "compileall" in " ".join(i.args for i in _in(STAGES[0], "RUN")), "bytecode built at build time"
    assert not _in(FINAL, "VOLUME"), "the chart mounts the emptyDir; VOLUME would hide it"


def test_dockerignore_keeps_the_context_small_and_secret_free():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".tools", "tests"} <= ignored
    # what the Dockerfile copies must not be ignored
    copied = {w.rstrip("/") for c in _in(STAGES[0], "COPY") for w in shlex.split(c.args)[:-1] if not w.startswith("--")}
    assert copied and not copied & ignored
