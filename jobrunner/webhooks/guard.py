"""The address guard: a webhook may not be turned against the network jobrunner runs in
(docs/architecture.md, "Webhooks"). The host is resolved once; every address it resolves
to must be public (unless `allow_private`); the connection goes to the address vetted."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv4 ranges the ipaddress module's flags leave out or name loosely.
_V4_RANGES = [
    (ipaddress.ip_network("0.0.0.0/8"), "in 0.0.0.0/8 (this network)"),
    (ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT (100.64.0.0/10)"),
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)"),
    (ipaddress.ip_network("198.18.0.0/15"), "a benchmarking range (198.18.0.0/15)"),
    (ipaddress.ip_network("255.255.255.255/32"), "broadcast"),
]
_V6_RANGES = [
    (ipaddress.ip_network("fec0::/10"), "site-local (fec0::/10)"),
    (ipaddress.ip_network("2001::/32"), "Teredo (2001::/32)"),
    (ipaddress.ip_network("100::/64"), "discard-only (100::/64)"),
]
_NAT64 = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]


class Refused(Exception):
    """Why a delivery was not sent: one line, recorded on the attempt."""


class Unresolved(Refused):
    """The host's name did not resolve: not sent this time, and maybe next time (a DNS
    outage must not end a delivery for good)."""


class Target:
    """Where an attempt goes: `address` (vetted) for the connection, `host` for the
    Host header and the TLS name."""

    __slots__ = ("url", "scheme", "host", "port", "address", "path")

    def __init__(self, url: str, scheme: str, host: str, port: int, address: str, path: str):
        self.url, self.scheme, self.host, self.port = url, scheme, host, port
        self.address, self.path = address, path

    def connect_url(self) -> str:
        """The URL with the vetted address in place of the name."""
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def forbidden_reason(address: Address) -> str | None:
    """Why `address` may not be a webhook's target, or None: it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            why = forbidden_reason(embedded)
            return f"{address} embeds {embedded}, which is {why}" if why else None
        for network, why in _V6_RANGES:
            if address in network:
                return f"{address} is {why}"
    else:
        for network, why in _V4_RANGES:
            if address in network:
                return f"{address} is {why}"
    for flag, why in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, flag):
            return f"{address} is {why}"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: IPv4-mapped (::ffff:a.b.c.d), 6to4
    (2002::/16), NAT64 (64:ff9b::/96), IPv4-compatible (::a.b.c.d)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(int(address))
    return None


def literal_reason(url: str) -> str | None:
    """Why `url`'s host, when it is an IP address, may not be a target (None for a name,
    or a public address)."""
    host = (urlsplit(url).hostname or "").split("%")[0]
    try:
        return forbidden_reason(ipaddress.ip_address(host))
    except ValueError:
        return None


def default_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def vet(
    url: str,
    *,
    allow_private: bool,
    resolve: Callable[[str, int], list[str]] = default_resolve,
) -> Target:
    """The target of `url`, its host resolved once; Refused when the URL is not one we
    send to or any address it resolves to is forbidden."""
    from jobrunner.webhooks.settings import url_problem

    problem = url_problem(url)
    if problem:
        raise Refused(problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        literal: Address | None = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        literal = None
    if literal is not None:
        found = [str(literal)]
    else:
        try:
            found = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise Unresolved(f"cannot resolve {host}: {exc}") from None
        if not found:
            raise Unresolved(f"cannot resolve {host}: no address")
    addresses = [ipaddress.ip_address(a.split("%")[0]) for a in found]
    if not allow_private:
        for address in addresses:
            why = forbidden_reason(address)
            if why is not None:
                shown = "" if literal is not None else f"{host} resolves to "
                raise Refused(f"{shown}{why} (allow_private = true allows it)")
    return Target(url, parts.scheme, host, port, str(addresses[0]), path)
