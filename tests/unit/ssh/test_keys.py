from __future__ import annotations

import subprocess

import paramiko
import pytest

from ssvm_operator.ssh import errors
from ssvm_operator.ssh.keys import fingerprint, generate_keypair, load_private_key, load_public_key, public_line


def test_generated_keys_load_in_paramiko_and_match(tmp_path):
    pair = generate_keypair("ssvm-1 host key")
    key = load_private_key(pair.private_openssh.encode())
    assert isinstance(key, paramiko.Ed25519Key)
    assert public_line(key) == " ".join(pair.public_openssh.split()[:2])
    assert fingerprint(key) == pair.fingerprint == fingerprint(load_public_key(pair.public_openssh))
    assert pair.private_openssh not in repr(pair)


def test_fingerprint_agrees_with_ssh_keygen(tmp_path):
    pair = generate_keypair()
    path = tmp_path / "key"
    path.write_text(pair.private_openssh)
    path.chmod(0o600)
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    assert out.split()[1] == pair.fingerprint
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    assert derived.split()[:2] == pair.public_openssh.split()[:2]


def test_rsa_pem_keys_load_too():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    assert isinstance(load_private_key(pem), paramiko.RSAKey)


def test_unreadable_keys_raise_invalid_key_without_quoting_them():
    secret_garbage = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWdhcmJhZ2U=\n-----END OPENSSH PRIVATE KEY-----\n"
    with pytest.raises(errors.InvalidKey) as exc:
        load_private_key(secret_garbage)
    assert "c2VjcmV0LWdhcmJhZ2U" not in str(exc.value) and exc.value.reason == "InvalidKey"
    with pytest.raises(errors.InvalidKey):
        load_public_key("not a key")
