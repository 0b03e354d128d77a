"""Exit codes and the one exception type every action raises for an expected failure."""
from __future__ import annotations

# Exit codes of `ssvm-agent` (also in docs/guest-agent.md). The JSON on stdout says the same in words.
EXIT_OK = 0             # the action did what was asked (for `check`: the guest is healthy)
EXIT_FAILED = 1         # the action could not do it; `reason` says why (mount refused, iptables error...)
EXIT_BAD_REQUEST = 2    # unknown action, unreadable JSON, a missing or malformed payload field
EXIT_UNHEALTHY = 3      # `check` ran to the end and found problems; the report lists them
EXIT_INTERNAL = 4       # a bug in the agent (unexpected exception); the message names its type only


class AgentError(Exception):
    """An expected failure: `reason` is a CamelCase word fit for a Kubernetes condition reason."""

    def __init__(self, reason: str, message: str, exit_code: int = EXIT_FAILED, **details):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.exit_code = exit_code
        self.details = details


def bad_request(message: str) -> AgentError:
    return AgentError("InvalidPayload", message, EXIT_BAD_REQUEST)
