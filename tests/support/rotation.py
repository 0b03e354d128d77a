"""Rotating the operator's SSH key on a guest without a moment where neither key works."""
from __future__ import annotations

import paramiko

from ssvm_operator.ssh.channel import GuestTarget, SSHGuestChannel
from ssvm_operator.ssh.keys import fingerprint, load_private_key, public_line


async def rotate_operator_key(channel: SSHGuestChannel, target: GuestTarget, new_private_key: bytes | str | paramiko.PKey,
                              key_options: str = "") -> SSHGuestChannel:
    """Add the new key with the old one, log in with the new one, then drop the old one.

    Returns a channel using the new key. If any step fails the old key still works (the error is
    raised); re-running the rotation is safe.
    """
    new_key = new_private_key if isinstance(new_private_key, paramiko.PKey) else load_private_key(new_private_key)
    line = f"{key_options} {public_line(new_key)} ssvm-operator".strip()
    (await channel.run_action(target, "authorized-keys", {"add": [line]})).raise_for_failure(target.name)
    new_channel = channel.with_key(new_key)
    # Logging in with the new key is the verification; the same call removes the old key.
    result = await new_channel.run_action(target, "authorized-keys", {"remove": [channel.key_fingerprint]})
    result.raise_for_failure(target.name)
    if fingerprint(new_key) not in result.data.get("keys", []):
        raise RuntimeError("the guest does not list the new key after rotation")
    return new_channel
