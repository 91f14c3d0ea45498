"""Outbound safety of webhook URLs: the scheme, and the addresses a URL may reach.

https only unless ``WEBHOOK_ALLOW_HTTP``; a host that resolves to any address that is not a global
unicast one (loopback, private, link-local and so the cloud metadata services at 169.254.169.254 and
fd00:ec2::254, carrier-grade NAT, multicast, reserved, unspecified) is refused unless the host is listed
in ``WEBHOOK_ALLOWED_HOSTS``. The check runs when a webhook is registered or changed, and again before
every delivery against the addresses resolved then: the delivery connects to the very address that was
checked (``Host`` and TLS SNI keep the name), so a DNS answer that changes in between (rebinding)
cannot lead it elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from app.config import Settings
from app.webhooks.model import UnsafeUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal"})
MAX_URL_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the static checks: its parts, and whether its host is explicitly allowed."""

    url: str
    scheme: str
    host: str  # without brackets, lower case
    port: int
    path: str  # path and query
    allowed: bool

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_target(url: str, settings: Settings) -> Target:
    """The URL's parts, or UnsafeUrl (422) for a URL that is not absolute http(s) or not allowed."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeUrl("the URL contains spaces or control characters")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UnsafeUrl("a webhook URL starts with https://")
    if scheme == "http" and not settings.webhook_allow_http:
        raise UnsafeUrl("a webhook URL must use https (WEBHOOK_ALLOW_HTTP is off)")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("a webhook URL carries no user name or password")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UnsafeUrl("the URL has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    allowed = host in settings.webhook_allowed_host_set
    if not allowed and host in METADATA_HOSTS:
        raise UnsafeUrl(f"the host {host!r} is a cloud metadata service")
    return Target(url, scheme, host, port or (443 if scheme == "https" else 80), path, allowed)


def forbidden(address: IPAddress) -> bool:
    """True for any address that is not global unicast (checked through IPv4-mapped/6to4 forms too)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address.teredo:
            inner = address.teredo[1]
        if inner is not None and forbidden(inner):
            return True
    return not address.is_global or address.is_multicast


def _check(target: Target, infos: list[tuple[str, int]]) -> list[tuple[str, int]]:
    if not infos:
        raise UnsafeUrl(f"the host {target.host!r} does not resolve")
    if target.allowed:
        return infos
    for address, _family in infos:
        if forbidden(ipaddress.ip_address(address)):
            raise UnsafeUrl(
                f"the host {target.host!r} resolves to {address}, a loopback, private, link-local or other "
                "non-public address (list the host in WEBHOOK_ALLOWED_HOSTS to allow it)"
            )
    return infos


def _addresses(raw: list[tuple[Any, ...]]) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for family, _type, _proto, _name, sockaddr in raw:
        address = str(sockaddr[0]).split("%", 1)[0]
        if (address, int(family)) not in seen:
            seen.append((address, int(family)))
    return seen


def resolve(target: Target) -> list[tuple[str, int]]:
    """The checked addresses of the target's host (blocking: the worker's threads)."""
    try:
        raw = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"the host {target.host!r} does not resolve: {exc}") from None
    return _check(target, _addresses(list(raw)))


async def resolve_async(target: Target) -> list[tuple[str, int]]:
    """The same, on the event loop (its resolver runs getaddrinfo in a thread)."""
    try:
        raw = await asyncio.get_running_loop().getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"the host {target.host!r} does not resolve: {exc}") from None
    return _check(target, _addresses(list(raw)))
