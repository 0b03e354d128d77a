"""remove-store: the store unmounted and forgotten, idempotent, and the check no longer expects it."""
from __future__ import annotations

from ssvm_operator.agent.cli import execute

URL = "nfs://nfs.example/export/gone"


def test_a_removed_store_is_unmounted_and_forgotten(tmp_path):
    assert execute("setup-store", {"url": URL}, state_dir=str(tmp_path))[0] == 0
    assert execute("setup-store", {"url": "nfs://nfs.example/export/kept"}, state_dir=str(tmp_path))[0] == 0
    code, doc = execute("remove-store", {"url": URL}, state_dir=str(tmp_path))
    assert code == 0 and doc["wasMounted"] and doc["wasKnown"]
    code, again = execute("remove-store", {"url": URL}, state_dir=str(tmp_path))
    assert code == 0 and not again["wasMounted"] and not again["wasKnown"], "a second removal is a no-op"
    code, check = execute("check", {"copyServer": False}, state_dir=str(tmp_path))
    assert code == 0 and check["healthy"], check
    assert len([c for c in check["checks"] if c["name"].startswith("store")]) == 1, "only the kept store is checked"


def test_a_bad_url_is_refused(tmp_path):
    code, doc = execute("remove-store", {"url": "http://host/x"}, state_dir=str(tmp_path))
    assert code == 2 and doc["reason"] == "InvalidPayload"
