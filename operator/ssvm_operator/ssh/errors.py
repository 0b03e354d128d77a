"""Typed guest-channel errors; each `reason` is ready to be a condition reason (SSHReady=False...)."""
from __future__ import annotations


class GuestError(Exception):
    """Base: `reason` is a CamelCase word, `message` says what happened, never with a secret in it."""
    reason = "GuestError"

    def __init__(self, message: str, target: str | None = None):
        self.message = message
        self.target = target
        super().__init__(f"{target}: {message}" if target else message)


class HostKeyMismatch(GuestError):
    """The guest presented a host key other than the pinned one: never proceed."""
    reason = "HostKeyMismatch"


class ConnectionRefused(GuestError):
    reason = "ConnectionRefused"


class Unreachable(GuestError):
    """No route, network down, address not there."""
    reason = "Unreachable"


class Timeout(GuestError):
    """Connect, banner, auth, command or the outer deadline ran out."""
    reason = "Timeout"


class AuthenticationFailed(GuestError):
    reason = "AuthenticationFailed"


class ProtocolError(GuestError):
    """SSH failed in another way, or the agent's output was not the JSON it promises."""
    reason = "ProtocolError"


class InvalidKey(GuestError):
    """A private or public key could not be read (its content is never quoted)."""
    reason = "InvalidKey"


class ActionFailed(GuestError):
    """The agent ran and said no; `agent_reason` is its own reason (NoNFSClientSupport, ...)."""
    reason = "ActionFailed"

    def __init__(self, message: str, target: str | None = None, agent_reason: str | None = None,
                 exit_code: int | None = None):
        super().__init__(message, target)
        self.agent_reason = agent_reason
        self.exit_code = exit_code
