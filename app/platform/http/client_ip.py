"""The client's address of a request: the peer's, or what a trusted proxy says in X-Forwarded-For.

The walk goes right to left through ``X-Forwarded-For`` (each proxy appends the address it received
the request from) and stops at the first address that is not a trusted proxy: that one is the
client. Addresses left of it were written by whoever sent the request and are never believed, and a
peer that is not a trusted proxy is the client whatever headers it sends. ``TRUSTED_PROXIES``
(app/config.py) lists the proxies; gunicorn.conf.py gives uvicorn the same list.
"""

from __future__ import annotations

import functools
import ipaddress

from app.config import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=8192)  # every request parses its peer: a few distinct values, mostly
def parse_address(value: str) -> IPAddress | None:
    """An address as a proxy or server writes it (``1.2.3.4``, ``1.2.3.4:5678``, ``::1``,
    ``[::1]:80``), an IPv4-mapped IPv6 address as IPv4; None for anything else."""
    value = value.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=8192)
def _trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


@functools.lru_cache(maxsize=8192)
def _canonical(peer: str) -> str:
    address = parse_address(peer)
    return peer if address is None else str(address)


def client_ip(peer: str | None, forwarded_for: list[str], trusted: tuple[IPNetwork, ...]) -> str | None:
    """The client's address (canonical text) of a request from ``peer`` carrying the
    ``X-Forwarded-For`` header values ``forwarded_for``; ``peer`` as it is when it is no IP address
    (a Unix socket), None without a peer."""
    if peer is None:
        return None
    if not forwarded_for:
        return _canonical(peer)
    address = parse_address(peer)
    if address is None:
        return peer
    if not _trusted(address, trusted):
        return str(address)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        parsed = parse_address(hop)
        if parsed is None:
            break  # garbage: the last trusted hop is all we know
        address = parsed
        if not _trusted(address, trusted):
            break
    return str(address)
