"""The diagnostics bundle: collected on request into a ConfigMap owned by the SSVM, secrets redacted, bounded."""
from __future__ import annotations

import base64

from ssvm_operator.controllers.guest.diagnostics import PART_MAX, TOTAL_MAX, diagnostics_parts

from tests.support.guest_world import NS, run

PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"


def _ssvm():
    return {"metadata": {"name": "z1-ssvm-1", "namespace": NS, "uid": "u"}, "status": {"state": "Running"}}


def test_secrets_are_redacted_and_every_part_is_bounded():
    report = {"config": {"note": "pw=S3cret-Copy-Pw"}, "iptables": ["-A X"] * 50_000, "log": [PRIVATE, "line with S3cret-Copy-Pw"]}
    parts = diagnostics_parts(_ssvm(), "d1", "2026-11-30T10:00:00Z", None, report, None, ["S3cret-Copy-Pw"])
    text = "".join(parts.values())
    assert "S3cret-Copy-Pw" not in text and "b3BlbnNzaC1rZXktdjEAAAAA" not in text
    assert all(len(v) <= PART_MAX for v in parts.values()) and sum(map(len, parts.values())) <= TOTAL_MAX
    assert "(cut" in parts["iptables.txt"]
    assert set(parts) >= {"summary.json", "check.json", "config.json", "iptables.txt", "mounts.json", "routes.txt", "dns.json",
                          "disk.json", "agent.log"}


def test_a_diagnostics_request_writes_the_bundle_and_acknowledges_it(world):
    world.cluster.add_zone(NS, "z1")
    world.cluster.add_store(NS, "s1", "z1")
    world.cluster.add_ssvm(NS, "z1-ssvm-1", "z1", "127.60.0.7")
    run(world.cluster.bring_up(world.gate, NS, "z1-ssvm-1"))
    run(world.ops.step(NS, "z1-ssvm-1"))
    world.ssvm("z1-ssvm-1")["spec"]["diagnosticsRequest"] = "diag-1"
    run(world.ops.step(NS, "z1-ssvm-1"))
    status = world.ssvm("z1-ssvm-1")["status"]
    assert status["observedDiagnosticsRequest"] == "diag-1" and status["diagnostics"]["configMap"] == "z1-ssvm-1-diagnostics"
    cm = world.cluster.configmaps[(NS, "z1-ssvm-1-diagnostics")]
    assert cm["metadata"]["ownerReferences"][0]["kind"] == "SecondaryStorageVM"
    assert "SSVM-COPY" in cm["data"]["iptables.txt"] and "nfs.example" in cm["data"]["config.json"]
    secrets = [base64.b64decode(v).decode().strip() for secret in world.secrets.secrets.values()
               for k, v in (secret.get("data") or {}).items() if k in ("ssh-privatekey", "password")]
    assert len(secrets) >= 3, "the operator key, the host key and the copy password exist"
    bundle = "".join(cm["data"].values())
    assert not [s for s in secrets if s in bundle]
    assert not [line for s in secrets for line in s.splitlines()[1:-1] if line and line in bundle], "no line of a private key"
    assert [e["reason"] for e in world.cluster.events] == ["DiagnosticsCollected"]
    run(world.ops.step(NS, "z1-ssvm-1"))
    assert [e["reason"] for e in world.cluster.events] == ["DiagnosticsCollected"], "a token is acted on once"
