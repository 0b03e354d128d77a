"""`firewall`: the copy port (80, or 443 with encryptCopy) admits exactly the given peers."""
from __future__ import annotations

from ssvm_operator.agent import rules
from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.errors import bad_request
from ssvm_operator.agent.fileio import read_json, write_json

HTTP_PORT, HTTPS_PORT = 80, 443


def copy_port(encrypt: bool) -> int:
    return HTTPS_PORT if encrypt else HTTP_PORT


def copy_chain_rules(peers: list[str]) -> list[str]:
    """One ACCEPT per peer, then DROP: whatever the INPUT policy, nobody else reaches the port."""
    return [f"-s {peer}/32 -j ACCEPT" for peer in peers] + ["-j DROP"]


def copy_hook(port: int, interface: str | None) -> tuple[str, str]:
    # Loopback stays outside the chain so the guest's own health check can reach its copy server.
    match = f"-i {interface}" if interface else "! -i lo"
    return ("INPUT", f"{match} -p tcp -m tcp --dport {port} -j {rules.COPY_CHAIN}")


def apply(ctx: ActionContext, payload: dict) -> dict:
    peers_in = payload.get("peers")
    if not isinstance(peers_in, list):
        raise bad_request("peers must be a list of IPv4 addresses (may be empty)")
    peers = sorted({rules.ipv4_address(p, "peers") for p in peers_in}, key=lambda a: tuple(map(int, a.split("."))))
    encrypt = bool(payload.get("encryptCopy", False))
    port = copy_port(encrypt)
    interface = payload.get("interface")
    if interface is not None:
        interface = rules.interface_name(interface, "interface")
    chain_rules = copy_chain_rules(peers)
    changed = rules.replace_chain(ctx, rules.COPY_CHAIN, chain_rules, [copy_hook(port, interface)])
    # The copy server enforces the same list itself: defence in depth if the rules are flushed.
    config = read_json(ctx.paths.copy_config, {})
    config.update({"port": port, "scheme": "https" if encrypt else "http", "allow": peers})
    if payload.get("bindAddress"):
        config["bindAddress"] = rules.ipv4_address(payload["bindAddress"], "bindAddress")
    write_json(ctx.paths.copy_config, config)
    return {"chain": rules.COPY_CHAIN, "port": port, "peers": peers, "changed": changed,
            "rules": rules.chain_rules(ctx, rules.COPY_CHAIN)}
