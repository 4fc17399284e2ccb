"""SSRF protection for webhook deliveries: which destinations may be contacted at all.

Called by the webhook handler before every attempt. The destination's host is resolved at
send time and *every* resolved address is checked; the transport then connects only to the
addresses checked here (``conveyor.handlers.webhook.transport``), so a second DNS answer
(rebinding) can never redirect the connection.

Refused unless an allowlisted network contains them (``CONVEYOR_WEBHOOK_ALLOWED_NETWORKS``,
comma-separated CIDRs): loopback, private (RFC 1918, ULA), link-local, carrier-grade NAT
(100.64.0.0/10), multicast, reserved, unspecified, anything else not globally routable, the
cloud metadata addresses, and IPv6 forms that embed one of those (IPv4-mapped, IPv4-compatible,
6to4, NAT64). Odd spellings of IPv4 literals (``2130706433``, ``0177.0.0.1``, ``0x7f.1``,
``127.1``) are read with ``inet_aton`` semantics before checking, as the C library would read
them, and a host whose last label is numeric but is no valid address is refused outright.
Only ``http`` and ``https`` are allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_NETWORKS_ENV = "CONVEYOR_WEBHOOK_ALLOWED_NETWORKS"
SCHEMES = {"http": 80, "https": 443}
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

Resolver = Callable[[str, int], Awaitable[list[str]]]

# Lookups run in their own threads: a resolver that hangs must not starve the worker's
# default executor (where synchronous handlers run).
_DNS_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="conveyor-webhook-dns")


class DestinationRefused(Exception):
    """The destination may not be contacted; nothing was sent. Not retryable."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"webhook destination {url} refused: {reason}")
        self.url = url
        self.reason = reason


class ResolutionFailed(Exception):
    """The host name did not resolve (right now); retryable."""

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"could not resolve {host}: {detail}")
        self.host = host


@dataclass(frozen=True, slots=True)
class Target:
    """A syntactically valid destination, before resolution. ``host`` is lowercased, without
    brackets; for an IP literal it is the canonical form of the address."""

    url: str  # the URL to request (IP literals rewritten to canonical form)
    scheme: str
    host: str
    port: int
    literal: IPAddress | None

    @property
    def breaker_key(self) -> str:
        """Circuit breakers are per destination host *and* port: two services on one host
        behind different ports fail independently."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked destination: connect only to ``addresses``."""

    target: Target
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses may be contacted. The default refuses every non-global address."""

    allowed_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AddressPolicy:
        raw = (environ if environ is not None else dict(os.environ)).get(ALLOWED_NETWORKS_ENV)
        return cls.parse(raw or "")

    @classmethod
    def parse(cls, networks: str | Sequence[str]) -> AddressPolicy:
        """From ``"127.0.0.0/8, ::1/128"`` or a list of CIDRs. Raises ``ValueError``."""
        items = networks.split(",") if isinstance(networks, str) else list(networks)
        parsed = tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip())
        return cls(allowed_networks=parsed)

    def is_allowed(self, address: IPAddress) -> bool:
        return any(
            address in net for net in self.allowed_networks if net.version == address.version
        )

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be contacted, or None when it may."""
        # An IPv6 form that embeds an IPv4 address reaches that IPv4 address: judge it alone.
        candidates: list[IPAddress] = [*_embedded_ipv4(address)] or [address]
        if any(self.is_allowed(a) for a in candidates):
            return None
        for candidate in candidates:
            reason = _classify(candidate)
            if reason is not None:
                shown = f"{candidate} (embedded in {address})" if candidate != address else ""
                return f"{reason} address {shown or address}"
        return None


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, compatible, 6to4, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    as_int = int(address)
    if as_int >> 32 == 0 and as_int > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        found.append(ipaddress.IPv4Address(as_int & 0xFFFFFFFF))
    if any(address in net for net in NAT64):
        found.append(ipaddress.IPv4Address(as_int & 0xFFFFFFFF))
    return found


def _classify(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "carrier-grade NAT"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if isinstance(address, ipaddress.IPv6Address) and any(address in n for n in NAT64):
        return "NAT64"
    if not address.is_global:
        return "non-global"
    return None


def _parse_aton_part(part: str) -> int | None:
    lowered = part.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:], 16) if lowered[2:] else None
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def parse_ipv4_aton(host: str) -> ipaddress.IPv4Address | None:
    """Read ``host`` the way ``inet_aton`` does (1 to 4 parts; each decimal, ``0``-octal or
    ``0x``-hex; the last part fills the remaining bytes), but strictly: no trailing text.
    None when it is not such an address."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or any(not p for p in parts):
        return None
    values = [_parse_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    numbers = [v for v in values if v is not None]
    *head, last = numbers
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = 0
    for v in head:
        value = value << 8 | v
    value = value << (8 * (4 - len(head))) | last
    return ipaddress.IPv4Address(value)


def _looks_numeric(label: str) -> bool:
    lowered = label.lower()
    return lowered.isdigit() or (
        lowered.startswith("0x") and all(c in "0123456789abcdef" for c in lowered[2:])
    )


def _literal(host: str, url: str) -> IPAddress | None:
    if ":" in host:
        if "%" in host:
            raise DestinationRefused(url, "IPv6 zone identifiers are not allowed")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise DestinationRefused(url, "malformed IPv6 address") from exc
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        pass
    odd = parse_ipv4_aton(host)
    if odd is not None:
        return odd
    if _looks_numeric(host.rstrip(".").rsplit(".", 1)[-1]):
        raise DestinationRefused(url, f"host {host!r} is neither a name nor a valid address")
    return None


def parse_target(url: str) -> Target:
    """Check the URL's syntax (scheme, host, port). Raises ``DestinationRefused``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DestinationRefused(url, f"malformed URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise DestinationRefused(url, "only http and https URLs are allowed")
    host = (parts.hostname or "").lower()
    if not host:
        raise DestinationRefused(url, "the URL has no host")
    literal = _literal(host, url)
    if literal is not None:
        host = str(literal)
        url = _with_host(parts, host)
    return Target(url=url, scheme=scheme, host=host, port=port or SCHEMES[scheme], literal=literal)


def _with_host(parts: SplitResult, host: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    netloc = shown if parts.port is None else f"{shown}:{parts.port}"
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    return parts._replace(netloc=netloc).geturl()


async def system_resolver(host: str, port: int) -> list[str]:
    """``getaddrinfo`` in a dedicated thread pool; the distinct addresses, in order."""
    loop = asyncio.get_running_loop()
    infos = await loop.run_in_executor(
        _DNS_POOL, lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    )
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


async def check_destination(
    url: str, policy: AddressPolicy, resolver: Resolver | None = None
) -> Destination:
    """Parse, resolve and check ``url``. Raises ``DestinationRefused`` (never retry) or
    ``ResolutionFailed`` (retry later)."""
    target = parse_target(url)
    if target.literal is not None:
        addresses: tuple[IPAddress, ...] = (target.literal,)
    else:
        try:
            raw = await (resolver or system_resolver)(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise ResolutionFailed(target.host, str(exc)) from exc
        if not raw:
            raise ResolutionFailed(target.host, "no addresses")
        addresses = tuple(ipaddress.ip_address(a.split("%", 1)[0]) for a in raw)
    for address in addresses:
        reason = policy.refusal(address)
        if reason is not None:
            raise DestinationRefused(target.url, f"{target.host} resolves to a {reason}")
    return Destination(target=target, addresses=addresses)
