from __future__ import annotations

import pytest

from ssvm_operator.agent import stores
from ssvm_operator.agent.effects import SimulatedEffects
from ssvm_operator.agent.errors import EXIT_BAD_REQUEST, EXIT_FAILED

URL = "nfs://nfs.example.org/export/secondary"


def test_store_id_is_stable_and_depends_on_host_and_path():
    a = stores.store_id("nfs.example.org", "/export/secondary")
    assert a == stores.store_id("NFS.example.org", "/export/secondary/")
    assert a == stores.store_id("nfs.example.org", "/export//secondary")
    assert a != stores.store_id("nfs.example.org", "/export/other")
    assert a != stores.store_id("nfs2.example.org", "/export/secondary")


@pytest.mark.parametrize("url", ["http://h/p", "nfs:///p", "nfs://h", "nfs://h/", None, 3])
def test_bad_urls_are_bad_requests(run, url):
    if url == "nfs://h/":  # the root export is a valid export path
        assert stores.parse_nfs_url(url) == ("h", "/")
        return
    code, doc = run("setup-store", {"url": url})
    assert code == EXIT_BAD_REQUEST and doc["reason"] == "InvalidPayload"


def test_mount_options_defaults_are_soft_and_bounded():
    assert stores.mount_options({}) == ["soft", "timeo=100", "retrans=3"]


def test_mount_options_override_by_key_and_version_field_wins():
    opts = stores.mount_options({"mountOptions": "hard,timeo=600,vers=3,noatime", "nfsVersion": "4.1"})
    assert sorted(opts) == sorted(["hard", "timeo=600", "retrans=3", "noatime", "vers=4.1"])
    assert "ro" in stores.mount_options({"readOnly": True})


@pytest.mark.parametrize("payload", [{"mountOptions": ["soft,evil"]}, {"mountOptions": ["a b"]}, {"nfsVersion": "5"}])
def test_mount_options_are_validated(payload):
    with pytest.raises(stores.AgentError) as exc:
        stores.mount_options(payload)
    assert exc.value.exit_code == EXIT_BAD_REQUEST


@pytest.mark.parametrize("stderr,reason", [
    ("mount.nfs: No such device", "NoNFSClientSupport"),
    ("mount: unknown filesystem type 'nfs'", "NoNFSClientSupport"),
    ("mount.nfs: access denied by server while mounting h:/p", "PermissionDenied"),
    ("mount.nfs: Protocol not supported", "NFSVersionUnsupported"),
    ("mount.nfs: requested NFS version or transport protocol is not supported", "NFSVersionUnsupported"),
    ("mount.nfs: mounting h:/p failed, reason given by server: No such file or directory", "ExportNotFound"),
    ("mount.nfs: Connection refused", "Unreachable"),
    ("mount.nfs: Connection timed out", "Unreachable"),
    ("mount.nfs: No route to host", "Unreachable"),
    ("mount.nfs: something else entirely", "MountFailed"),
])
def test_mount_failures_are_classified(stderr, reason):
    assert stores.classify_mount_failure(stderr, 32) == reason


def test_a_mount_command_timeout_counts_as_unreachable():
    assert stores.classify_mount_failure("", 124) == "Unreachable"


def test_setup_store_mounts_creates_layout_and_answers_parent_dir(run, state_dir):
    code, doc = run("setup-store", {"url": URL, "nfsVersion": "3"})
    assert code == 0 and doc["ok"] and doc["simulated"] is True
    sid = stores.store_id("nfs.example.org", "/export/secondary")
    mount_point = state_dir / "mnt/SecStorage" / sid
    assert doc["parentDir"] == doc["mountPoint"] == str(mount_point)
    assert doc["alreadyMounted"] is False
    assert doc["layout"] == ["template", "snapshots", "volumes"]
    assert all((mount_point / d).is_dir() for d in stores.LAYOUT)
    assert "vers=3" in doc["options"] and "soft" in doc["options"]


def test_setup_store_is_idempotent_and_leaves_an_existing_mount_alone(run, ctx):
    run("setup-store", {"url": URL})
    before = ctx.effects.mounts()
    code, doc = run("setup-store", {"url": URL, "mountOptions": ["hard"]})
    assert code == 0 and doc["alreadyMounted"] is True
    assert ctx.effects.mounts() == before  # not remounted with the new options


def test_a_mount_point_holding_another_source_is_reported(run, ctx):
    sid = stores.store_id("nfs.example.org", "/export/secondary")
    ctx.effects.mount("other:/x", ctx.paths.mount_root / sid, "nfs", [], 1)
    code, doc = run("setup-store", {"url": URL})
    assert code == EXIT_FAILED and doc["reason"] == "MountPointBusy"


def test_injected_mount_failure_is_classified(run, faults):
    faults(mount={"nfs.example.org:/export/secondary": "mount.nfs: access denied by server"})
    code, doc = run("setup-store", {"url": URL})
    assert code == EXIT_FAILED and doc["reason"] == "PermissionDenied" and not doc["ok"]


def test_no_nfs_client_in_the_kernel_is_its_own_reason(run, faults):
    faults(nfsClient=False)
    code, doc = run("setup-store", {"url": URL})
    assert code == EXIT_FAILED and doc["reason"] == "NoNFSClientSupport"
    assert "no NFS client" in doc["message"]


def test_remount_repairs_a_stale_mount(run, ctx):
    run("setup-store", {"url": URL})
    sid = stores.store_id("nfs.example.org", "/export/secondary")
    target = ctx.paths.mount_root / sid
    assert isinstance(ctx.effects, SimulatedEffects)
    ctx.effects.mark_stale(target)
    code, doc = run("check", {"copyServer": False})
    assert code == 3 and doc["staleStores"] == [sid]
    code, doc = run("remount", {})
    assert code == 0
    assert doc["stores"] == [{"storeId": sid, "before": "stale", "remounted": True, "after": "ok"}]
    code, doc = run("check", {"copyServer": False})
    assert code == 0 and doc["healthy"]


def test_remount_leaves_healthy_mounts_alone_and_reports_failures(run, faults):
    run("setup-store", {"url": URL})
    code, doc = run("remount", {})
    assert code == 0 and doc["stores"][0]["remounted"] is False
    faults(mount={"nfs.example.org:/export/secondary": "mount.nfs: Connection refused"})
    code, doc = run("remount", {"force": True})
    assert code == EXIT_FAILED and doc["reason"] == "RemountFailed"
    assert doc["stores"][0]["reason"] == "Unreachable"


def test_remount_of_unknown_store_is_a_bad_request(run):
    code, doc = run("remount", {"storeId": "nope"})
    assert code == EXIT_BAD_REQUEST
