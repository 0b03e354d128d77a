from __future__ import annotations

import io
import json
import socket
import subprocess
import sys

import pytest

from ssvm_operator.agent import check, cli, pack
from ssvm_operator.agent.errors import EXIT_BAD_REQUEST, EXIT_INTERNAL, EXIT_UNHEALTHY


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    yield sock.getsockname()[1]
    sock.close()


def test_check_management_reachable_and_unreachable(run, listener):
    code, doc = run("check", {"management": {"host": "127.0.0.1", "port": listener}, "copyServer": False})
    assert code == 0 and doc["checks"][0]["ok"]
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    code, doc = run("check", {"management": {"host": "127.0.0.1", "port": port}, "copyServer": False})
    assert code == EXIT_UNHEALTHY and doc["problems"] == ["management"] and not doc["healthy"]


def test_check_reports_dns_failures(run, monkeypatch):
    monkeypatch.setattr(check, "_resolve", lambda name, timeout: (False, "Name or service not known"))
    code, doc = run("check", {"dnsNames": ["mgmt.example"], "copyServer": False})
    assert code == EXIT_UNHEALTHY and doc["problems"] == ["dns:mgmt.example"]


def test_check_without_copy_server_is_unhealthy(run):
    code, doc = run("check", {})
    assert code == EXIT_UNHEALTHY and doc["problems"] == ["copyServer"]


def test_check_reports_stores_not_mounted(run, state_dir):
    run("setup-store", {"url": "nfs://h/e"})
    code, doc = run("check", {"stores": ["missing-id"], "copyServer": False})
    assert code == EXIT_UNHEALTHY and doc["checks"][0]["state"] == "unmounted"


def test_unknown_action_and_bad_json_are_exit_2(run, monkeypatch, capsys, state_dir):
    code, doc = run("frobnicate")
    assert code == EXIT_BAD_REQUEST and "unknown action" in doc["message"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("{not json"))
    assert cli.main(["--state-dir", str(state_dir), "info"]) == EXIT_BAD_REQUEST
    assert json.loads(capsys.readouterr().out)["reason"] == "InvalidPayload"


def test_an_internal_error_names_its_type_but_not_the_payload(run, monkeypatch):
    def boom(ctx, payload):
        raise RuntimeError(f"leaking {payload['copyPassword']}")
    monkeypatch.setitem(cli.ACTIONS, "vm-setup", boom)
    code, doc = run("vm-setup", {"copyPassword": "p4ssw0rd-in-clear"})
    assert code == EXIT_INTERNAL and doc["reason"] == "InternalError"
    assert "p4ssw0rd-in-clear" not in json.dumps(doc)


def test_zipapp_runs_with_the_system_python(tmp_path):
    archive = pack.build_zipapp(tmp_path / "ssvm-agent.pyz")
    assert pack.zipapp_bytes() == archive.read_bytes()  # reproducible
    proc = subprocess.run(["/usr/bin/python3", "-I", str(archive), "--state-dir", str(tmp_path / "g"), "firewall"],
                          input=json.dumps({"peers": ["192.0.2.1"]}), capture_output=True, text=True, timeout=60)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["simulated"] and doc["rules"][0] == "-A SSVM-COPY -s 192.0.2.1/32 -j ACCEPT"


def test_python_dash_m_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ssvm_operator.agent", "--state-dir", str(tmp_path), "info"],
                          input="", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"]
