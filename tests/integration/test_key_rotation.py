"""Rotating the operator's SSH key on the dev cluster: the user adds `ssh-privatekey.next` to the key Secret,
the operator adds it to every simulated guest, verifies it, promotes it and drops the old key, while the
SSVMs stay Ready (SSHReady never goes False)."""
from __future__ import annotations

import base64
import json
import threading

import pytest
from ssvm_operator import constants as c
from ssvm_operator.agent.authorized_keys import fingerprint as blob_fingerprint
from ssvm_operator.agent.authorized_keys import parse_key
from ssvm_operator.ssh.keys import generate_keypair
from ssvm_operator.controllers.keys.secrets import RETIRED_ANNOTATION

from .harness import Api, OperatorThread, condition, ready_ssvms, wait_for
from .test_guest_ops import _secret_text, _zone, gapi, guest_cluster  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
SECRET = "ssvm-operator-ssh"


def _guest_keys(guests, ns: str, name: str) -> list[str]:
    _, guest = guests.guests[(ns, name)]
    lines = (guest.state_dir / "authorized_keys").read_text().splitlines()
    return sorted(blob_fingerprint(parse_key(line)[1]) for line in lines if line.strip())


class ReadyWatch:
    """Polls the SSVMs in a thread and keeps every moment one of them was not SSHReady/Ready."""

    def __init__(self, api: Api) -> None:
        self.api, self.stop, self.seen = api, threading.Event(), []
        self.polls = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for name, s in self.api.ssvms().items():
                for type_ in ("SSHReady", "Ready"):
                    cond = condition(s, type_)
                    if cond.get("status") != "True":
                        self.seen.append((name, type_, cond.get("status"), cond.get("reason")))
            self.polls += 1
            self.stop.wait(0.1)

    def __enter__(self) -> ReadyWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def test_the_operator_key_rotates_across_running_guests_without_downtime(gapi, guest_cluster):  # noqa: F811
    _, guests = guest_cluster
    _zone(gapi, "z1")
    gapi.store("s1", "z1")
    gapi.store("s2", "z1")
    with OperatorThread(gapi.ns, None, scan_interval=3.0, secrets_ttl=1.0):
        ssvms = wait_for("2 SSVMs Running, Ready and healthy", ready_ssvms(gapi, 2), timeout=90)
        old_private = _secret_text(gapi, SECRET, "ssh-privatekey")
        old_fp = _guest_keys(guests, gapi.ns, next(iter(ssvms)))[0]
        new = generate_keypair("rotated")
        with ReadyWatch(gapi) as watch:
            # The user's step: the next key beside the current one (kubectl patch secret ... does the same).
            gapi.core.patch_namespaced_secret(SECRET, gapi.ns, {"data": {
                "ssh-privatekey.next": base64.b64encode(new.private_openssh.encode()).decode()}})

            def rotated():
                secret = gapi.core.read_namespaced_secret(SECRET, gapi.ns)
                data = secret.data or {}
                done = (base64.b64decode(data.get("ssh-privatekey", "")).decode() == new.private_openssh
                        and "ssh-privatekey.next" not in data
                        and RETIRED_ANNOTATION not in (secret.metadata.annotations or {})
                        and all(_guest_keys(guests, gapi.ns, n) == [new.fingerprint] for n in ssvms))
                return done
            wait_for("the next key promoted and the old one dropped from every guest", rotated, timeout=60)
            wait_for("SSVMs still Ready", ready_ssvms(gapi, 2), timeout=30)
        assert watch.polls > 0 and watch.seen == [], watch.seen[:5]
        for s in gapi.ssvms().values():
            assert s["status"]["sshKeys"]["accepted"] == [new.fingerprint], s["status"]["sshKeys"]
            assert condition(s, "SSHReady")["status"] == "True"
        assert old_fp != new.fingerprint
        reasons = [e.get("reason") for e in gapi.events() if (e.get("involved_object") or {}).get("kind") == c.SSVM_KIND]
        assert reasons.count("SSHKeyRotationStarted") == 2 and reasons.count("SSHKeyRotated") == 2, reasons
    dumped = json.dumps(gapi.list(c.SSVM_PLURAL)) + json.dumps(gapi.events(), default=str)
    for private in (old_private, new.private_openssh):
        assert all(line not in dumped for line in private.splitlines() if len(line) > 20 and "-----" not in line)
