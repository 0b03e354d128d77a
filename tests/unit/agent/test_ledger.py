"""The agent's ledger: content applied once per boot, requests counted, failures retried, bad fields refused."""
from __future__ import annotations

import shutil

from ssvm_operator.agent.cli import execute

HASH = "sha256:" + "ab" * 32


def test_the_same_content_is_answered_from_the_ledger(tmp_path):
    payload = {"peers": ["192.0.2.7"], "contentHash": HASH}
    code, first = execute("firewall", dict(payload), state_dir=str(tmp_path))
    assert code == 0 and first["unchanged"] is False and first["requests"] == 1
    code, again = execute("firewall", dict(payload), state_dir=str(tmp_path))
    assert code == 0 and again["unchanged"] is True and again["requests"] == 2
    assert again["rules"] == first["rules"]
    code, other = execute("firewall", {"peers": [], "contentHash": "sha256:" + "cd" * 32}, state_dir=str(tmp_path))
    assert other["unchanged"] is False and other["requests"] == 1


def test_a_failed_attempt_counts_and_is_tried_again(tmp_path):
    bad = {"url": "nfs://nfs.example/export/a", "readOnly": False, "contentHash": HASH, "ledgerKey": "s1"}
    faults = tmp_path / "var/lib/ssvm-agent/simulated"
    faults.mkdir(parents=True)
    (faults / "faults.json").write_text('{"mount": {"nfs.example:/export/a": "Unreachable"}}')
    code, failed = execute("setup-store", dict(bad), state_dir=str(tmp_path))
    assert code != 0 and failed["ok"] is False
    (faults / "faults.json").write_text("{}")
    code, done = execute("setup-store", dict(bad), state_dir=str(tmp_path))
    assert code == 0 and done["unchanged"] is False and done["requests"] == 2


def test_malformed_ledger_fields_are_refused(tmp_path):
    code, doc = execute("firewall", {"peers": [], "contentHash": "x; rm -rf /"}, state_dir=str(tmp_path))
    assert code == 2 and doc["reason"] == "InvalidPayload"
    code, doc = execute("firewall", {"peers": [], "contentHash": HASH, "ledgerKey": "../../etc"}, state_dir=str(tmp_path))
    assert code == 2 and doc["reason"] == "InvalidPayload"


def test_a_push_meant_for_an_earlier_boot_is_refused_and_applies_nothing(tmp_path):
    code, info = execute("info", {}, state_dir=str(tmp_path))
    boot = info["bootId"]
    assert code == 0 and len(boot) == 32 and execute("info", {}, state_dir=str(tmp_path))[1]["bootId"] == boot, "stable within a boot"
    code, stale = execute("firewall", {"peers": ["192.0.2.7"], "contentHash": HASH, "bootId": "0" * 32}, state_dir=str(tmp_path))
    assert code != 0 and stale["reason"] == "InstanceChanged"
    assert not list(tmp_path.rglob("ledger.json")), "nothing recorded, nothing applied"
    code, done = execute("firewall", {"peers": ["192.0.2.7"], "contentHash": HASH, "bootId": boot}, state_dir=str(tmp_path))
    assert code == 0 and done["unchanged"] is False and done["requests"] == 1
    for run_dir in tmp_path.rglob("run"):   # a reboot: tmpfs gone, a new boot id
        shutil.rmtree(run_dir)
    assert execute("info", {}, state_dir=str(tmp_path))[1]["bootId"] != boot
