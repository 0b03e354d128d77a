"""`vm-setup`: outbound access to the allowed internal sites, the download egress chain, and the copy server's credentials."""
from __future__ import annotations

from urllib.parse import urlsplit

from ssvm_operator.agent import credentials, egress, rules
from ssvm_operator.agent.context import ActionContext
from ssvm_operator.agent.errors import AgentError, bad_request
from ssvm_operator.agent.fileio import read_json, write_atomic, write_json


def outbound_rules(sites: list[str]) -> list[str]:
    return [f"-d {site} -p tcp -m state --state NEW -j ACCEPT" for site in sites]


def outbound_hook(interface: str) -> tuple[str, str]:
    return ("OUTPUT", f"-o {interface} -j {rules.OUTBOUND_CHAIN}")


def _sites(payload: dict) -> list[str]:
    raw = payload.get("allowedInternalSites", [])
    if not isinstance(raw, list):
        raise bad_request("allowedInternalSites must be a list of CIDRs or addresses")
    return sorted({rules.ipv4_network(s, "allowedInternalSites") for s in raw})


def _sync_routes(ctx: ActionContext, sites: list[str], gateway: str | None, interface: str) -> list[dict]:
    """Routes to the sites through the management gateway; routes we added earlier and no longer want go."""
    recorded = read_json(ctx.paths.routes, {})
    wanted = {site: {"via": gateway, "dev": interface} for site in sites} if gateway else {}
    for cidr in sorted(set(recorded) - set(wanted)):
        ctx.effects.route_delete(cidr)  # already gone is fine
    for cidr, route in sorted(wanted.items()):
        result = ctx.effects.route_replace(cidr, route["via"], route["dev"])
        if not result.ok:
            raise AgentError("RouteFailed", f"ip route replace {cidr} failed: {result.stderr.strip()}")
    write_json(ctx.paths.routes, wanted)
    return [{"cidr": c, **r} for c, r in sorted(wanted.items())]


def _proxy_address(value) -> str | None:
    """The proxy's address, which downloads may reach even when it is internal."""
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme != "http" or not parts.hostname:
        raise bad_request("httpProxy must be http://host[:port]")
    return egress.resolve(parts.hostname, parts.port or 3128, 10.0)[0]


def _install_tls(ctx: ActionContext, tls) -> bool:
    if tls is None:
        return False
    if not isinstance(tls, dict) or not isinstance(tls.get("certificate"), str) or not isinstance(tls.get("privateKey"), str):
        raise bad_request("tls must hold certificate and privateKey (PEM strings)")
    write_atomic(ctx.paths.tls_key, tls["privateKey"], mode=0o600)
    write_atomic(ctx.paths.tls_cert, tls["certificate"], mode=0o644)
    return True


def apply(ctx: ActionContext, payload: dict) -> dict:
    sites = _sites(payload)
    interface = rules.interface_name(payload.get("managementInterface", "eth1"), "managementInterface")
    gateway = payload.get("managementGateway")
    if gateway is not None:
        gateway = rules.ipv4_address(gateway, "managementGateway")
    user = payload.get("copyUser", credentials.DEFAULT_USER)
    password = payload.get("copyPassword")
    if not isinstance(user, str) or not user or ":" in user:
        raise bad_request("copyUser must be a non-empty name without ':'")
    if password is not None and (not isinstance(password, str) or not password):
        raise bad_request("copyPassword must be a non-empty string")
    changed = rules.replace_chain(ctx, rules.OUTBOUND_CHAIN, outbound_rules(sites), [outbound_hook(interface)])
    proxy = _proxy_address(payload.get("httpProxy"))
    changed = rules.replace_chain(ctx, egress.DOWNLOAD_CHAIN, egress.chain_rules(sites, proxy), [egress.chain_hook()]) or changed
    routes = _sync_routes(ctx, sites, gateway, interface)
    creds_changed = credentials.install(ctx.paths.credentials, user, password) if password else False
    tls = _install_tls(ctx, payload.get("tls"))
    link = payload.get("linkSecret")
    if link is not None:
        if not isinstance(link, str) or len(link) < 16:
            raise bad_request("linkSecret must be a string of at least 16 characters")
        write_atomic(ctx.paths.link_secret, link, mode=0o600)
    return {"chain": rules.OUTBOUND_CHAIN, "allowedInternalSites": sites, "changed": changed,
            "rules": rules.chain_rules(ctx, rules.OUTBOUND_CHAIN), "downloadRules": rules.chain_rules(ctx, egress.DOWNLOAD_CHAIN),
            "routes": routes,
            "credentials": {"user": user, "installed": ctx.paths.credentials.exists(), "changed": creds_changed},
            "tlsInstalled": tls or ctx.paths.tls_cert.exists(), "linksSigned": ctx.paths.link_secret.exists()}
