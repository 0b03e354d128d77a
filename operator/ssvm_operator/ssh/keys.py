"""SSH keys for the guest channel: the operator's key pair and one host key per SSVM.

Keys are ed25519 in OpenSSH formats, which sshd and paramiko both read. paramiko (5.x) cannot
write ed25519 private keys, so `cryptography` (a paramiko dependency) generates and serialises them.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ssvm_operator.ssh.errors import InvalidKey

_PRIVATE_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str   # "-----BEGIN OPENSSH PRIVATE KEY-----..." : a secret, keep it in a Secret
    public_openssh: str    # "ssh-ed25519 AAAA... comment": for authorized_keys / the pinned host key
    fingerprint: str       # "SHA256:..." as ssh-keygen -l prints it

    def __repr__(self) -> str:  # a key pair in a log line shows its fingerprint, never the private part
        return f"KeyPair(fingerprint={self.fingerprint!r})"


def generate_keypair(comment: str = "ssvm-operator") -> KeyPair:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    line = f"{public} {comment}".strip()
    return KeyPair(private, line, fingerprint(line))


def _split_public(line: str) -> tuple[str, bytes]:
    words = line.split() if isinstance(line, str) else []
    for i, word in enumerate(words[:-1]):
        if word.startswith(("ssh-", "ecdsa-")):
            try:
                return word, base64.b64decode(words[i + 1], validate=True)
            except binascii.Error:
                break
    raise InvalidKey("not an OpenSSH public key line")


def fingerprint(key: str | paramiko.PKey) -> str:
    """SHA256 fingerprint of a public key line or a paramiko key."""
    blob = key.asbytes() if isinstance(key, paramiko.PKey) else _split_public(key)[1]
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def load_public_key(line: str) -> paramiko.PKey:
    kind, blob = _split_public(line)
    try:
        return paramiko.PKey.from_type_string(kind, blob)
    except Exception:  # noqa: BLE001 - any parse failure is the same InvalidKey
        raise InvalidKey(f"unreadable {kind} public key") from None


def public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def load_private_key(data: bytes | str, passphrase: str | None = None) -> paramiko.PKey:
    """A paramiko key from the bytes of a Secret (OpenSSH or PEM); errors never quote the content."""
    text = data.decode() if isinstance(data, bytes) else data
    for cls in _PRIVATE_KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text), password=passphrase)
        except Exception:  # noqa: BLE001 - try the next format
            continue
    raise InvalidKey("the private key is not an OpenSSH/PEM ed25519, ECDSA or RSA key")
