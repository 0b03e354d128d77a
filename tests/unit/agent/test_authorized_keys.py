from __future__ import annotations

from ssvm_operator.agent.authorized_keys import fingerprint, parse_key
from ssvm_operator.ssh.keys import fingerprint as operator_fingerprint
from ssvm_operator.ssh.keys import generate_keypair


def test_fingerprints_agree_with_the_operator_side():
    pair = generate_keypair()
    assert fingerprint(parse_key(pair.public_openssh)[1]) == operator_fingerprint(pair.public_openssh) == pair.fingerprint


def test_add_then_remove_keeps_other_lines(run, ctx):
    old, new = generate_keypair(), generate_keypair()
    ctx.paths.authorized_keys.parent.mkdir(parents=True, exist_ok=True)
    ctx.paths.authorized_keys.write_text(f"# managed\n{old.public_openssh}\n")
    code, doc = run("authorized-keys", {"add": [f'restrict {new.public_openssh}']})
    assert code == 0 and doc["added"] == [new.fingerprint] and set(doc["keys"]) == {old.fingerprint, new.fingerprint}
    code, doc = run("authorized-keys", {"add": [new.public_openssh]})
    assert doc["added"] == []  # idempotent
    code, doc = run("authorized-keys", {"remove": [old.fingerprint]})
    assert code == 0 and doc["removed"] == [old.fingerprint] and doc["keys"] == [new.fingerprint]
    text = ctx.paths.authorized_keys.read_text()
    assert text.startswith("# managed\n") and "restrict ssh-ed25519" in text and old.public_openssh not in text
    assert ctx.paths.authorized_keys.stat().st_mode & 0o077 == 0


def test_removing_every_key_is_refused(run, ctx):
    only = generate_keypair()
    run("authorized-keys", {"add": [only.public_openssh]})
    code, doc = run("authorized-keys", {"remove": [only.public_openssh]})
    assert code == 2 and doc["reason"] == "LockoutRefused"
    assert only.fingerprint in run("authorized-keys", {})[1]["keys"]


def test_garbage_keys_are_bad_requests(run):
    code, doc = run("authorized-keys", {"add": ["ssh-ed25519 !!!notbase64"]})
    assert code == 2
    code, doc = run("authorized-keys", {"add": ["ssh-ed25519 AAAA\nssh-rsa AAAA"]})
    assert code == 2
