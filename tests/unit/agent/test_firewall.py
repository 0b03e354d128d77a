from __future__ import annotations

import os
import stat

import pytest

from ssvm_operator.agent import credentials, iptables_model
from ssvm_operator.agent.errors import EXIT_BAD_REQUEST


def rules(ctx):
    return ctx.effects.iptables_rules()


def test_firewall_admits_exactly_the_peers_on_the_copy_port(run, ctx):
    code, doc = run("firewall", {"peers": ["192.0.2.20", "192.0.2.3", "192.0.2.3"]})
    assert code == 0 and doc["ok"] and doc["port"] == 80 and doc["changed"]
    assert doc["peers"] == ["192.0.2.3", "192.0.2.20"]
    assert rules(ctx) == [
        "-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT",
        "-N SSVM-COPY",
        "-A INPUT ! -i lo -p tcp -m tcp --dport 80 -j SSVM-COPY",
        "-A SSVM-COPY -s 192.0.2.3/32 -j ACCEPT",
        "-A SSVM-COPY -s 192.0.2.20/32 -j ACCEPT",
        "-A SSVM-COPY -j DROP",
    ]


def test_firewall_is_idempotent(run, ctx):
    run("firewall", {"peers": ["192.0.2.3"]})
    before = rules(ctx)
    code, doc = run("firewall", {"peers": ["192.0.2.3"]})
    assert code == 0 and doc["changed"] is False and rules(ctx) == before


def test_peer_changes_replace_the_chain_and_encrypt_copy_moves_the_port(run, ctx):
    run("firewall", {"peers": ["192.0.2.3", "192.0.2.4"]})
    code, doc = run("firewall", {"peers": ["192.0.2.9"], "encryptCopy": True, "interface": "eth2"})
    assert code == 0 and doc["port"] == 443
    assert [r for r in rules(ctx) if r.startswith("-A")] == [
        "-A INPUT -i eth2 -p tcp -m tcp --dport 443 -j SSVM-COPY",
        "-A SSVM-COPY -s 192.0.2.9/32 -j ACCEPT",
        "-A SSVM-COPY -j DROP",
    ]


def test_an_empty_peer_list_admits_nobody(run, ctx):
    run("firewall", {"peers": []})
    assert "-A SSVM-COPY -j DROP" in rules(ctx)
    assert not [r for r in rules(ctx) if "ACCEPT" in r and r.startswith("-A SSVM-COPY")]


def test_rules_that_are_not_ours_are_left_alone(run, ctx):
    ctx.effects.iptables_restore("*filter\n:KEEP - [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
                                 "-A KEEP -j RETURN\n-A OUTPUT -j KEEP\nCOMMIT\n")
    run("firewall", {"peers": ["192.0.2.3"]})
    run("vm-setup", {"allowedInternalSites": ["10.0.0.0/8"]})
    run("firewall", {"peers": ["192.0.2.4"], "encryptCopy": True})
    current = rules(ctx)
    for foreign in ("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "-A KEEP -j RETURN", "-A OUTPUT -j KEEP"):
        assert foreign in current


@pytest.mark.parametrize("peers", [["not-an-ip"], ["2001:db8::1"], "192.0.2.1", None])
def test_bad_peers_are_bad_requests(run, ctx, peers):
    code, doc = run("firewall", {"peers": peers})
    assert code == EXIT_BAD_REQUEST
    assert rules(ctx) == ["-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT"]


def test_firewall_writes_the_copy_servers_allow_list(run, ctx):
    import json
    run("firewall", {"peers": ["192.0.2.3"], "encryptCopy": True})
    config = json.loads(ctx.paths.copy_config.read_text())
    assert config == {"allow": ["192.0.2.3"], "port": 443, "scheme": "https"}


def test_vm_setup_allows_outbound_to_internal_sites_and_routes_them(run, ctx):
    code, doc = run("vm-setup", {"allowedInternalSites": ["10.1.0.0/16", "10.2.3.4"], "managementInterface": "eth1",
                                 "managementGateway": "10.0.0.1", "copyPassword": "correct horse"})
    assert code == 0 and doc["ok"]
    assert doc["allowedInternalSites"] == ["10.1.0.0/16", "10.2.3.4/32"]
    assert [r for r in rules(ctx) if r.startswith("-A") and "DOWNLOAD" not in r] == [
        "-A OUTPUT -o eth1 -j SSVM-OUTBOUND",
        "-A SSVM-OUTBOUND -d 10.1.0.0/16 -p tcp -m state --state NEW -j ACCEPT",
        "-A SSVM-OUTBOUND -d 10.2.3.4/32 -p tcp -m state --state NEW -j ACCEPT",
    ]
    download = [r for r in rules(ctx) if "DOWNLOAD" in r and r.startswith("-A")]
    assert download[:3] == ["-A OUTPUT -m mark --mark 0x55d1 -j SSVM-DOWNLOAD",
                            "-A SSVM-DOWNLOAD -d 10.1.0.0/16 -j RETURN", "-A SSVM-DOWNLOAD -d 10.2.3.4/32 -j RETURN"], \
        "a download may reach the allowed sites"
    assert "-A SSVM-DOWNLOAD -d 10.0.0.0/8 -j REJECT --reject-with icmp-admin-prohibited" in download, "and no other internal site"
    assert "-A SSVM-DOWNLOAD -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited" in download
    assert doc["routes"] == [{"cidr": "10.1.0.0/16", "dev": "eth1", "via": "10.0.0.1"},
                             {"cidr": "10.2.3.4/32", "dev": "eth1", "via": "10.0.0.1"}]
    code, doc = run("vm-setup", {"allowedInternalSites": ["10.1.0.0/16"], "managementGateway": "10.0.0.1",
                                 "copyPassword": "correct horse"})
    assert doc["routes"] == [{"cidr": "10.1.0.0/16", "dev": "eth1", "via": "10.0.0.1"}]
    assert doc["credentials"]["changed"] is False


def test_vm_setup_installs_credentials_0600_without_the_password_in_clear(run, ctx):
    code, doc = run("vm-setup", {"copyPassword": "correct horse", "copyUser": "cloud"})
    assert code == 0 and doc["credentials"] == {"user": "cloud", "installed": True, "changed": True}
    path = ctx.paths.credentials
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "correct horse" not in path.read_text()
    record = credentials.load(path)
    assert credentials.verify(record, "cloud", "correct horse")
    assert not credentials.verify(record, "cloud", "wrong")
    assert not credentials.verify(record, "root", "correct horse")
    code, doc = run("vm-setup", {"copyPassword": "battery staple"})
    assert doc["credentials"]["changed"] is True
    assert credentials.verify(credentials.load(path), "cloud", "battery staple")


@pytest.mark.parametrize("sites", [["0.0.0.0/0"], ["0.0.0.0/8"], ["nope"], "10.0.0.0/8"])
def test_vm_setup_refuses_open_or_bad_sites(run, sites):
    code, doc = run("vm-setup", {"allowedInternalSites": sites})
    assert code == EXIT_BAD_REQUEST


def test_failed_restore_changes_nothing(ctx):
    table = iptables_model.Table.empty()
    with pytest.raises(iptables_model.RestoreError):
        iptables_model.apply_restore(table, "*filter\n:X - [0:0]\n-A X -j ACCEPT\n-D INPUT -j X\nCOMMIT\n")
    assert table.render_rules() == ["-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT"]


def test_parse_save_reads_real_iptables_save_output():
    text = """# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j RETURN
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:SSVM-COPY - [0:0]
-A INPUT ! -i lo -p tcp -m tcp --dport 80 -j SSVM-COPY
-A SSVM-COPY -s 192.0.2.3/32 -j ACCEPT
COMMIT
"""
    table = iptables_model.parse_save(text)
    assert table.policies["INPUT"] == "DROP"
    assert table.jumps_to("SSVM-COPY") == [("INPUT", "! -i lo -p tcp -m tcp --dport 80 -j SSVM-COPY")]
    assert "PREROUTING" not in table.chains
