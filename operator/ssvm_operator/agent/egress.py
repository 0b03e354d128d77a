"""Where a download may go: no loopback, link-local (metadata services) or private address unless it is an
allowed internal site, checked on every address a name resolves to, and enforced again by iptables for
the download's own sockets (marked with DOWNLOAD_MARK), so a name that resolves differently at connect
time gains nothing."""
from __future__ import annotations

import ipaddress
import socket
import threading

from ssvm_operator.agent.errors import AgentError

DOWNLOAD_MARK = 0x55D1   # SO_MARK of download sockets: the SSVM-DOWNLOAD chain judges only these
DOWNLOAD_CHAIN = "SSVM-DOWNLOAD"
# Never a download target unless listed in allowedInternalSites.
INTERNAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4"))


def internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        return not ip.is_global
    return any(ip in net for net in INTERNAL_NETWORKS)


def allowed(address: str, sites: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return not internal(address) or any(ip in ipaddress.ip_network(s, strict=False) for s in sites)


def resolve(host: str, port: int, timeout: float) -> list[str]:
    """The host's addresses; getaddrinfo has no timeout of its own, so it runs in a thread."""
    answer: list = []

    def look() -> None:
        try:
            answer.append(sorted({i[4][0] for i in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}))
        except OSError as exc:
            answer.append(exc)

    worker = threading.Thread(target=look, daemon=True)
    worker.start()
    worker.join(timeout)
    if not answer:
        raise AgentError("Unreachable", f"no DNS answer for {host} in {timeout:g}s")
    if isinstance(answer[0], OSError):
        raise AgentError("Unreachable", f"cannot resolve {host}: {answer[0]}")
    return answer[0]


def checked_addresses(host: str, port: int, sites: list[str], timeout: float) -> list[str]:
    """The addresses to connect to; refused with InternalAddressRefused if any of them is internal and not allowed."""
    addresses = resolve(host, port, timeout)
    refused = [a for a in addresses if not allowed(a, sites)]
    if refused:
        raise AgentError("InternalAddressRefused",
                         f"{host} resolves to {', '.join(refused)}: loopback, link-local and private addresses are refused "
                         "unless listed in the zone's allowedInternalSites")
    return addresses


def chain_rules(sites: list[str], proxy: str | None) -> list[str]:
    """SSVM-DOWNLOAD: allowed sites (and the proxy) pass, every other internal network is rejected."""
    passes = sorted(set(sites) | ({f"{proxy}/32"} if proxy else set()))
    rules = [f"-d {site} -j RETURN" for site in passes]
    rules += [f"-d {net} -j REJECT --reject-with icmp-admin-prohibited" for net in INTERNAL_NETWORKS]
    return rules


def chain_hook() -> tuple[str, str]:
    return ("OUTPUT", f"-m mark --mark 0x{DOWNLOAD_MARK:x} -j {DOWNLOAD_CHAIN}")
