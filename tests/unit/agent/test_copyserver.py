from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from ssvm_operator.agent import copyserver
from ssvm_operator.agent.fileio import read_json

PASSWORD = "copy-secret-42"


def auth(user="cloud", password=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def serve(run, ctx):
    """Start the copy server in a thread on 127.0.0.1 (a free port); yields a fetch function."""
    started = []

    def _start(peers, encrypt=False):
        run("firewall", {"peers": peers, "encryptCopy": encrypt})
        run("vm-setup", {"copyPassword": PASSWORD})
        stop = threading.Event()
        thread = threading.Thread(target=copyserver.serve, args=(ctx.paths,),
                                  kwargs={"bind": "127.0.0.1", "port": 0, "stop": stop, "poll": 0.1}, daemon=True)
        thread.start()
        started.append((stop, thread))
        status_path = ctx.paths.var / "copy-server.json"
        for _ in range(500):  # bounded wait (10 s) for the server to write its address
            if status_path.exists():
                break
            time.sleep(0.02)
        else:
            pytest.fail("copy server did not start")
        status = read_json(status_path, {})
        base = f"{status['scheme']}://127.0.0.1:{status['port']}"
        context = ssl._create_unverified_context()

        def fetch(path, headers=None, method="GET"):
            req = urllib.request.Request(base + path, headers=headers or {}, method=method)
            try:
                with urllib.request.urlopen(req, timeout=5, context=context) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()
        return fetch

    yield _start
    for stop, thread in started:
        stop.set()
        thread.join(timeout=5)


@pytest.fixture
def template_file(run, ctx):
    code, doc = run("setup-store", {"url": "nfs://nfs.example.org/export"})
    assert code == 0
    path = ctx.paths.mount_root / doc["storeId"] / "template" / "tmpl-1.qcow2"
    path.write_bytes(b"QFI\xfb template bytes")
    return f"/{doc['storeId']}/template/tmpl-1.qcow2"


def test_allowed_peer_with_credentials_gets_the_file(serve, template_file):
    fetch = serve(["127.0.0.1"])
    assert fetch(template_file, auth()) == (200, b"QFI\xfb template bytes")


def test_wrong_or_missing_credentials_get_401(serve, template_file):
    fetch = serve(["127.0.0.1"])
    assert fetch(template_file)[0] == 401
    assert fetch(template_file, auth(password="nope"))[0] == 401
    assert fetch(template_file, auth(user="root"))[0] == 401


def test_an_address_not_on_the_allow_list_gets_403_even_with_credentials(serve, template_file):
    fetch = serve(["192.0.2.50"])
    assert fetch(template_file, auth())[0] == 403


def test_the_server_is_read_only_and_stays_inside_the_stores(serve, template_file):
    fetch = serve(["127.0.0.1"])
    assert fetch(template_file, auth(), method="PUT")[0] == 405
    assert fetch(template_file, auth(), method="DELETE")[0] == 405
    assert fetch("/../../etc/passwd", auth())[0] == 404
    assert fetch("/%2e%2e/%2e%2e/etc/hostname", auth())[0] == 404
    assert fetch("/", auth())[0] == 404


def test_healthz_answers_loopback_with_session_count(serve):
    fetch = serve([])
    status, body = fetch("/healthz")
    assert status == 200 and json.loads(body)["activeSessions"] == 0


def test_https_with_a_generated_certificate(serve, template_file, ctx):
    fetch = serve(["127.0.0.1"], encrypt=True)
    assert ctx.paths.tls_key.stat().st_mode & 0o077 == 0
    assert fetch(template_file, auth()) == (200, b"QFI\xfb template bytes")


def test_check_reports_the_copy_server_up_and_its_sessions(serve, run):
    serve([])
    code, doc = run("check", {"dnsNames": ["localhost"]})
    assert code == 0 and doc["healthy"] and doc["activeSessions"] == 0
    assert {c["name"] for c in doc["checks"]} == {"dns:localhost", "copyServer"}
