"""`ssvm-operator render`: offline plan of SSVMs, VirtualMachines and Secrets for manifests."""
from __future__ import annotations

from ssvm_operator.model.redaction import REDACTED

import pytest
import yaml

from ssvm_operator.backends.kubevirt.webhook import webhook_violations
from ssvm_operator.cli import main
from tests.kubevirt.helpers import schema_errors
from tests.manifests import ROOT

EXAMPLES = ROOT / "examples"


def _render(capsys, *files: str, expect: int = 0) -> tuple[list[dict], str, str]:
    args = ["render"]
    for f in files:
        args += ["-f", f]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == expect, err
    return [d for d in yaml.safe_load_all(out) if d], out, err


def test_render_examples(capsys):
    docs, out, err = _render(capsys, str(EXAMPLES))
    by_kind: dict[str, list[str]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
    # zone1 has two writable stores: two templateProcessors; zone2 one; the hand-made executor gets a VM too.
    assert sorted(by_kind["SecondaryStorageVM"]) == ["zone1-ssvm-1", "zone1-ssvm-2", "zone2-ssvm-1"]
    assert sorted(by_kind["VirtualMachine"]) == ["zone1-extra-executor", "zone1-ssvm-1", "zone1-ssvm-2", "zone2-ssvm-1"]
    assert sorted(by_kind["Secret"]) == [f"{n}-cloudinit" for n in sorted(by_kind["VirtualMachine"])]
    for doc in docs:
        if doc["kind"] == "VirtualMachine":
            assert schema_errors("kubevirt.io/virtualmachine_v1.json", doc) == []
            assert webhook_violations(doc) == []
    executor = next(d for d in docs if d["kind"] == "VirtualMachine" and d["metadata"]["name"] == "zone1-extra-executor")
    assert executor["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] == 2  # the SSVM's offering override
    assert "skipped examples/secrets.yaml" in err.replace(str(ROOT) + "/", "")
    assert out.startswith("# Zone/zone1:")


def test_render_output_holds_no_secret_material(capsys):
    _, out, _ = _render(capsys, str(EXAMPLES))
    secret_example = yaml.safe_load((EXAMPLES / "secrets.yaml").read_text())["stringData"]["password"]
    for needle in (secret_example, "PRIVATE KEY", "vmpassword=", "encoding: b64"):
        assert needle not in out
    assert f"ed25519_private: {REDACTED}" in out


def test_render_refuses_a_bad_manifest_naming_the_field(capsys, tmp_path):
    bad = next(yaml.safe_load_all((EXAMPLES / "basic-zone.yaml").read_text()))
    bad["spec"]["networkType"] = "Flat"
    bad["spec"]["secondaryStorage"]["allowedInternalSites"] = ["0.0.0.0/0"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    docs, out, err = _render(capsys, str(path), expect=1)
    assert out == "" and docs == []
    assert 'Zone/zone2: spec.networkType: Unsupported value: "Flat"' in err
    bad["spec"]["networkType"] = "Basic"
    path.write_text(yaml.safe_dump(bad))
    _, _, err = _render(capsys, str(path), expect=1)
    assert "spec.secondaryStorage.allowedInternalSites[0]" in err and "0.0.0.0/x" in err


def test_zone_without_store_is_not_ready_and_gets_nothing(capsys, tmp_path):
    zone = next(yaml.safe_load_all((EXAMPLES / "basic-zone.yaml").read_text()))
    path = tmp_path / "zone.yaml"
    path.write_text(yaml.safe_dump(zone))
    docs, out, _ = _render(capsys, str(path))
    assert docs == []
    assert "# Zone/zone2: not ready (NoImageStore" in out


@pytest.mark.parametrize("stores, min_running, max_count, expected", [(1, 3, 5, 3), (3, 1, 2, 2), (2, 1, 5, 2)])
def test_stores_min_running_and_max_count(capsys, tmp_path, stores, min_running, max_count, expected):
    zone, store = yaml.safe_load_all((EXAMPLES / "basic-zone.yaml").read_text())
    zone["spec"]["secondaryStorage"].update(minRunning=min_running, maxCount=max_count)
    docs = [zone] + [{**store, "metadata": {"name": f"store-{i}"}} for i in range(stores)]
    path = tmp_path / "zone.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    rendered, out, _ = _render(capsys, str(path))
    assert sum(1 for d in rendered if d["kind"] == "VirtualMachine") == expected
    roles = [d["spec"]["role"] for d in rendered if d["kind"] == "SecondaryStorageVM"]
    assert roles == ["templateProcessor"] * expected   # minRunning's SSVMs are templateProcessors too (no load yet)
    if stores > max_count:
        assert "maxCount 2 reached" in out


def test_render_builds_vms_with_the_operators_own_request_builder(capsys):
    """render and the operator share one VM request builder: the rendered VM is what the backend would write."""
    from ssvm_operator.backends.kubevirt.manifests import ANNOTATION_SPEC_HASH, build_virtual_machine
    from ssvm_operator.commands.render import placeholder_uid
    from ssvm_operator.controllers.ssvm.vm_request import build_vm_request
    from ssvm_operator.model.spec_hash import material_hash

    docs, _, _ = _render(capsys, str(EXAMPLES))
    zones = {d["metadata"]["name"]: d for f in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
             if d and d.get("kind") == "Zone"}
    ssvms = {d["metadata"]["name"]: d for d in docs if d["kind"] == "SecondaryStorageVM"}
    vms = [d for d in docs if d["kind"] == "VirtualMachine" and d["metadata"]["name"] in ssvms]
    assert vms
    for vm in vms:
        ssvm = ssvms[vm["metadata"]["name"]]
        zone = zones[ssvm["spec"]["zoneRef"]]
        want = material_hash(zone["spec"], ssvm["spec"])
        assert vm["metadata"]["annotations"][ANNOTATION_SPEC_HASH] == want
        body = {**ssvm, "metadata": {**ssvm["metadata"], "uid": placeholder_uid("SecondaryStorageVM", ssvm["metadata"]["name"])}}
        mine = build_virtual_machine(build_vm_request(body, zone, True))
        assert mine["metadata"]["labels"] == vm["metadata"]["labels"]
        assert mine["spec"]["template"]["spec"]["domain"] == vm["spec"]["template"]["spec"]["domain"]
