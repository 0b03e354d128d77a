"""The agent's own iptables chains, each replaced in one `iptables-restore --noflush` transaction.

Declaring an existing user chain in a --noflush restore empties it, and the whole COMMIT applies
at once, so a chain is never seen half-written. Jump rules into the chain are added or removed in
the same transaction; rules that are not ours are never touched.
"""
from __future__ import annotations

import ipaddress

from ssvm_operator.agent import iptables_model
from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.errors import AgentError, bad_request

COPY_CHAIN = "SSVM-COPY"
OUTBOUND_CHAIN = "SSVM-OUTBOUND"


def ipv4_address(value, field: str) -> str:
    try:
        addr = ipaddress.ip_address(value)
    except (TypeError, ValueError):
        raise bad_request(f"{field}: {value!r} is not an IP address") from None
    if addr.version != 4:
        raise bad_request(f"{field}: only IPv4 is supported, got {value}")
    return str(addr)


def ipv4_network(value, field: str) -> str:
    """A CIDR (a plain address becomes /32); 0.0.0.0/x is refused: it would open everything."""
    try:
        net = ipaddress.ip_network(value, strict=False)
    except (TypeError, ValueError):
        raise bad_request(f"{field}: {value!r} is not a CIDR or IP address") from None
    if net.version != 4:
        raise bad_request(f"{field}: only IPv4 is supported, got {value}")
    if net.network_address == ipaddress.IPv4Address("0.0.0.0"):
        raise bad_request(f"{field}: {value} would allow every address")
    return str(net)


def interface_name(value, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 15 or not all(c.isalnum() or c in "._-@" for c in value):
        raise bad_request(f"{field}: {value!r} is not a network interface name")
    return value


def replace_chain(ctx: ActionContext, chain: str, rules: list[str], hooks: list[tuple[str, str]]) -> bool:
    """Make `chain` hold exactly `rules` and be jumped to exactly by `hooks` ((builtin chain, spec)).

    Returns whether anything changed. Specs are written as `iptables -S` prints them, so comparing
    with the saved table is a string comparison.
    """
    try:
        current = iptables_model.parse_save(ctx.effects.iptables_save())
    except OSError as exc:
        raise AgentError("FirewallFailed", str(exc)) from None
    existing_jumps = current.jumps_to(chain)
    unchanged = current.chains.get(chain) == rules and sorted(existing_jumps) == sorted(hooks)
    if unchanged:
        return False
    lines = ["*filter", f":{chain} - [0:0]"]
    lines += [f"-A {chain} {rule}" for rule in rules]
    lines += [f"-D {builtin} {spec}" for builtin, spec in existing_jumps if (builtin, spec) not in hooks]
    lines += [f"-I {builtin} 1 {spec}" for builtin, spec in hooks if (builtin, spec) not in existing_jumps]
    lines.append("COMMIT")
    result = ctx.effects.iptables_restore("\n".join(lines) + "\n")
    if not result.ok:
        raise AgentError("FirewallFailed", f"iptables-restore failed: {result.stderr.strip()}")
    return True


def chain_rules(ctx: ActionContext, chain: str) -> list[str]:
    """The chain's lines as `iptables -S` shows them (for results and checks)."""
    return [line for line in ctx.effects.iptables_rules() if line.startswith(f"-A {chain} ")]
