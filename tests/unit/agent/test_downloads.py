"""Download jobs of the real agent (simulated store, real HTTP on loopback, real detached job processes):
resumed with Range after a drop, stalls retried, checksums and formats verified, internal addresses
refused, files removed, and a store's templates listed."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from ssvm_operator.agent.cli import execute
from ssvm_operator.agent.jobs import jobs_dir
from ssvm_operator.agent.paths import resolve_paths
from tests.support.http_source import Behaviour, HttpSource, qcow2_image, sha256

STORE = "nfs://nfs.example/export/secondary"
LOOPBACK = ["127.0.0.1/32"]


@pytest.fixture
def source():
    server = HttpSource().start()
    yield server
    server.stop()


@pytest.fixture
def guest(tmp_path):
    assert execute("setup-store", {"url": STORE}, state_dir=str(tmp_path))[0] == 0
    yield tmp_path
    from ssvm_operator.agent import jobs
    jobs.stop_all(resolve_paths(str(tmp_path))[0])


def _start(guest: Path, url: str, job: str = "t1", token: str = "r1", **extra) -> dict:
    payload = {"job": job, "request": token, "storeUrl": STORE, "installDir": "template/tmpl/ns/t1", "fileName": "t1.qcow2",
               "format": "QCOW2", "stallSeconds": 2, "retryBaseSeconds": 0.2, "maxAttempts": 3,
               "source": {"url": url, "allowedInternalSites": LOOPBACK}, **extra}
    code, doc = execute("template-download", payload, state_dir=str(guest))
    assert code == 0, doc
    return doc


def _wait(guest: Path, job: str = "t1", timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, doc = execute("jobs", {"jobs": [job]}, state_dir=str(guest))
        state = doc["jobs"].get(job)
        if state and state["state"] in ("Ready", "Error", "Interrupted"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not finish: {doc}")


def _store_dir(guest: Path) -> Path:
    return next((guest / "mnt/SecStorage").iterdir())


def test_a_small_image_lands_with_its_properties(guest, source):
    data = qcow2_image(300_000, virtual=5 << 30)
    state = _wait(guest) if _start(guest, source.add("/a.qcow2", data), checksum=sha256(data)) else None
    assert state["state"] == "Ready" and state["bytes"] == len(data) and state["percent"] == 100, state
    image = _store_dir(guest) / "template/tmpl/ns/t1/t1.qcow2"
    assert image.read_bytes() == data
    props = dict(line.split("=", 1) for line in (image.parent / "template.properties").read_text().splitlines())
    assert props["size"] == str(len(data)) and props["virtualsize"] == str(5 << 30) and props["checksum"] == sha256(data)
    assert not list(image.parent.glob(".*.part*")), "no partial file is left"


def test_a_dropped_connection_is_resumed_not_restarted(guest, source):
    data = qcow2_image(1_000_000)
    url = source.add("/drop.qcow2", data, Behaviour(drop_after=400_000))
    _start(guest, url, checksum=sha256(data))
    state = _wait(guest)
    assert state["state"] == "Ready", state
    ranges = [r.range for r in source.seen("/drop.qcow2")]
    assert ranges[0] is None and ranges[1] == "bytes=400000-", f"the second request resumes at the dropped byte: {ranges}"
    assert (_store_dir(guest) / "template/tmpl/ns/t1/t1.qcow2").read_bytes() == data


def test_a_stall_is_aborted_and_retried(guest, source):
    data = qcow2_image(500_000)
    url = source.add("/stall.qcow2", data, Behaviour(stall_after=100_000, stall_seconds=30))
    _start(guest, url, checksum=sha256(data))
    state = _wait(guest)
    assert state["state"] == "Ready" and state["attempts"] == 2, state
    assert [r.range for r in source.seen("/stall.qcow2")][1] == "bytes=100000-"


def test_a_wrong_checksum_is_an_error_and_leaves_no_file(guest, source):
    data = qcow2_image(200_000)
    _start(guest, source.add("/bad.qcow2", data), checksum="sha256:" + "0" * 64)
    state = _wait(guest)
    assert state["state"] == "Error" and state["reason"] == "ChecksumMismatch", state
    assert not [p for p in _store_dir(guest).rglob("*") if p.is_file()], "nothing is left on the store"


def test_not_found_and_forbidden_fail_at_once(guest, source):
    _start(guest, source.url("/missing.qcow2"))
    assert _wait(guest)["reason"] == "NotFound"
    source.add("/secret.qcow2", b"x", Behaviour(status=403))
    _start(guest, source.url("/secret.qcow2"), job="t2")
    state = _wait(guest, "t2")
    assert state["reason"] == "Forbidden" and state["attempts"] == 1, state


def test_a_server_error_is_retried_up_to_max_attempts(guest, source):
    source.add("/flaky.qcow2", b"x", Behaviour(status=503))
    _start(guest, source.url("/flaky.qcow2"))
    state = _wait(guest)
    assert state["state"] == "Error" and state["reason"] == "ServerError" and state["attempts"] == 3, state
    assert len(source.seen("/flaky.qcow2")) == 3


def test_a_format_that_lies_is_refused(guest, source):
    _start(guest, source.add("/text.qcow2", b"<html>not an image</html>" * 100))
    state = _wait(guest)
    assert state["reason"] == "FormatMismatch", state


def test_too_large_is_refused_before_the_bytes_come(guest, source):
    data = qcow2_image(200_000)
    _start(guest, source.add("/big.qcow2", data), maxBytes=100_000)
    state = _wait(guest)
    assert state["reason"] == "TooLarge" and state["bytes"] == 0, state


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254", "10.1.2.3", "localhost"])
def test_internal_addresses_are_refused_unless_allowed(guest, source, host):
    url = f"http://{host}:{source.port}/a.qcow2"
    code, doc = execute("template-download", {
        "job": "t1", "request": "r", "storeUrl": STORE, "installDir": "template/tmpl/ns/t1", "fileName": "t1.qcow2",
        "format": "QCOW2", "source": {"url": url, "allowedInternalSites": ["192.168.0.0/16"]}}, state_dir=str(guest))
    assert code == 0
    state = _wait(guest)
    assert state["state"] == "Error" and state["reason"] == "InternalAddressRefused", state
    assert not source.requests, "nothing was sent"


def test_the_same_request_reports_the_same_job_and_a_running_job_is_not_doubled(guest, source):
    data = qcow2_image(400_000)
    url = source.add("/slow.qcow2", data, Behaviour(rate=400_000))
    assert _start(guest, url)["started"]
    again = _start(guest, url)
    assert not again["started"], "the same token reports the job"
    other = _start(guest, url, token="r2")
    assert not other["started"], "a running job is not started twice"
    assert _wait(guest)["state"] == "Ready"
    assert len(source.seen("/slow.qcow2")) == 1


def test_remove_stops_the_job_and_removes_the_files(guest, source):
    data = qcow2_image(2_000_000)
    _start(guest, source.add("/long.qcow2", data, Behaviour(rate=200_000)))
    deadline = time.monotonic() + 20
    while execute("jobs", {}, state_dir=str(guest))[1]["jobs"]["t1"].get("bytes", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    code, doc = execute("template-remove", {"job": "t1", "storeUrl": STORE, "installDir": "template/tmpl/ns/t1"}, state_dir=str(guest))
    assert code == 0 and doc["stopped"] and doc["removed"], doc
    assert not (_store_dir(guest) / "template/tmpl/ns").exists(), "empty parents go too"
    assert execute("jobs", {}, state_dir=str(guest))[1]["jobs"] == {}
    assert execute("template-remove", {"job": "t1", "storeUrl": STORE, "installDir": "template/tmpl/ns/t1"},
                   state_dir=str(guest))[1]["removed"] is False, "a second removal is a no-op"


def test_list_reports_whole_and_damaged_templates(guest, source):
    data = qcow2_image(100_000)
    _start(guest, source.add("/l.qcow2", data))
    assert _wait(guest)["state"] == "Ready"
    listed = execute("template-list", {"storeUrl": STORE}, state_dir=str(guest))[1]["templates"]
    assert [(t["installDir"], t["whole"]) for t in listed] == [("template/tmpl/ns/t1", True)]
    image = _store_dir(guest) / "template/tmpl/ns/t1/t1.qcow2"
    image.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))   # damaged in place: same size
    assert execute("template-list", {"storeUrl": STORE}, state_dir=str(guest))[1]["templates"][0]["whole"] is True, \
        "the size alone cannot tell"
    verified = execute("template-list", {"storeUrl": STORE, "verify": True}, state_dir=str(guest))[1]["templates"][0]
    assert verified["whole"] is False and verified["checksumOk"] is False
    image.unlink()
    listed = execute("template-list", {"storeUrl": STORE}, state_dir=str(guest))[1]["templates"]
    assert listed[0]["whole"] is False and listed[0]["fileSize"] is None


def test_a_killed_job_is_interrupted_and_a_new_request_resumes_it(guest, source):
    data = qcow2_image(1_500_000)
    url = source.add("/k.qcow2", data, Behaviour(rate=300_000))
    _start(guest, url)
    deadline = time.monotonic() + 20
    while execute("jobs", {}, state_dir=str(guest))[1]["jobs"]["t1"].get("bytes", 0) < 300_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    from ssvm_operator.agent import jobs
    jobs._stop(jobs_dir(resolve_paths(str(guest))[0]) / "t1")   # what a reboot does to the process
    assert execute("jobs", {}, state_dir=str(guest))[1]["jobs"]["t1"]["state"] == "Interrupted"
    source.behaviours.pop("/k.qcow2")
    _start(guest, url, token="r2")
    assert _wait(guest)["state"] == "Ready"
    assert source.seen("/k.qcow2")[-1].range not in (None, "bytes=0-"), "resumed from the partial file on the store"


def test_a_running_download_counts_as_a_session_in_the_check(guest, source):
    _start(guest, source.add("/s.qcow2", qcow2_image(1_000_000), Behaviour(rate=200_000)))
    deadline = time.monotonic() + 20
    while execute("jobs", {}, state_dir=str(guest))[1]["jobs"]["t1"].get("pid") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    code, report = execute("check", {"copyServer": False}, state_dir=str(guest))
    assert report["downloads"] == 1 and report["activeSessions"] == 1, report


def test_a_download_goes_through_the_zones_proxy(guest, source):
    data = qcow2_image(200_000)
    source.add("/p.qcow2", data)
    # images.invalid resolves nowhere here: only the proxy can fetch it
    _start(guest, "http://images.invalid/p.qcow2", checksum=sha256(data),
           source={"url": "http://images.invalid/p.qcow2", "proxy": f"http://127.0.0.1:{source.port}", "allowedInternalSites": []})
    state = _wait(guest)
    assert state["state"] == "Ready", state
    assert [(r.path, r.proxied_for) for r in source.requests] == [("/p.qcow2", "images.invalid")]


def test_a_literal_internal_address_is_refused_even_behind_the_proxy(guest, source):
    _start(guest, "http://169.254.169.254/latest/meta-data",
           source={"url": "http://169.254.169.254/latest/meta-data", "proxy": f"http://127.0.0.1:{source.port}"})
    assert _wait(guest)["reason"] == "InternalAddressRefused"
    assert not source.requests, "nothing went to the proxy"


@pytest.mark.parametrize("bad", [{"installDir": "../etc"}, {"installDir": "template/tmpl/../../x"}, {"fileName": "../passwd"},
                                 {"source": {"store": STORE, "installDir": "template/tmpl/ns/t1", "fileName": "../../x"}},
                                 {"job": "../x"}, {"format": "EXE"}, {"checksum": "sha1:abc"}, {"storeUrl": "nfs://other/x"}])
def test_a_request_that_would_leave_the_store_or_is_malformed_is_refused(guest, bad):
    payload = {"job": "t1", "request": "r", "storeUrl": STORE, "installDir": "template/tmpl/ns/t1", "fileName": "t1.qcow2",
               "format": "QCOW2", "source": {"url": "http://127.0.0.1:1/x"}, **bad}
    code, doc = execute("template-download", payload, state_dir=str(guest))
    assert code != 0 and doc["reason"] in ("InvalidPayload", "StoreNotMounted"), doc


def test_a_peer_copy_server_with_a_self_signed_certificate_is_used_only_as_a_peer(guest, tmp_path):
    import subprocess
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ssvm-copy",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = HttpSource(tls=(str(cert), str(key))).start()
    try:
        data = qcow2_image(100_000)
        url = server.add("/peer.qcow2", data)
        _start(guest, url, source={"url": url, "allowedInternalSites": LOOPBACK})
        assert _wait(guest)["reason"] == "TLSError", "a self-signed certificate is refused for a template's own URL"
        _start(guest, url, job="t2", source={"url": url, "peer": True, "authorizationToken": "Basic eDp5"})
        assert _wait(guest, "t2")["state"] == "Ready"
    finally:
        server.stop()
