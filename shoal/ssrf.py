"""The SSRF guard for webhook URLs.

A webhook URL is the one place where a client makes shoal's servers open a
connection. Only globally routable unicast addresses are reachable: private,
loopback, link-local (cloud metadata at 169.254.169.254), shared (CGNAT),
multicast, unspecified and reserved addresses are refused, in IPv4 and IPv6,
including IPv4 addresses embedded in IPv6 (mapped, 6to4, Teredo, NAT64).
Operators exempt hosts or networks with SHOAL_WEBHOOK_ALLOW_HOSTS (local runs,
tests, an in-cluster receiver).

The check runs at submit time and again at delivery, after resolution; the
delivery then connects to the address that was checked, so DNS cannot change
the answer in between (rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from shoal.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_URL_LENGTH = 2048
SUBMIT_RESOLVE_SECONDS = 2.0


class BlockedAddress(InvalidRequest):
    code = "webhook_url_blocked"


@dataclass(frozen=True)
class Allowlist:
    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def parse_url(url: str) -> SplitResult:
    """A webhook URL: absolute http(s), a host, no credentials. 422 otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(
            f"webhook URL is longer than {MAX_URL_LENGTH} characters", code="invalid_webhook_url"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise InvalidRequest(
            f"webhook URL is malformed: {exc}", code="invalid_webhook_url"
        ) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            "webhook URL must be an absolute http:// or https:// URL", code="invalid_webhook_url"
        )
    if parts.username or parts.password:
        raise InvalidRequest(
            "webhook URL must not contain credentials; authenticate with the signature",
            code="invalid_webhook_url",
        )
    return parts


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_addresses(host: str, addresses: list[IPAddress], allow: Allowlist) -> list[IPAddress]:
    """The addresses a connection may use; raises BlockedAddress if any is refused.

    All must pass: a name that resolves to one public and one private address
    is refused rather than left to chance.
    """
    if allow.allows_host(host):
        return addresses
    for address in addresses:
        if not (is_public(address) or allow.allows_address(address)):
            raise BlockedAddress(
                f"webhook host {host!r} resolves to {address}, a private, loopback, link-local "
                "or otherwise non-public address; shoal does not send webhooks there "
                "(operators: SHOAL_WEBHOOK_ALLOW_HOSTS)"
            )
    return addresses


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _unique(infos: list[tuple[object, ...]]) -> list[IPAddress]:
    seen: dict[IPAddress, None] = {}
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        seen[ipaddress.ip_address(str(sockaddr[0]).split("%")[0])] = None
    return list(seen)


def resolve(url: str, allow: Allowlist) -> tuple[SplitResult, list[IPAddress]]:
    """Resolve the URL's host and check every address (blocking; for workers)."""
    parts = parse_url(url)
    host = parts.hostname or ""
    literal = _literal(host)
    if literal is not None:
        return parts, check_addresses(host, [literal], allow)
    infos = socket.getaddrinfo(host, _port(parts), type=socket.SOCK_STREAM)
    return parts, check_addresses(host, _unique(list(infos)), allow)


async def check_at_submit(url: str, allow: Allowlist) -> None:
    """Refuse a URL that is invalid or points somewhere private.

    A name that does not resolve now is accepted: DNS may be briefly down, and
    the delivery checks again (and retries) anyway.
    """
    parts = parse_url(url)
    host = parts.hostname or ""
    literal = _literal(host)
    if literal is not None:
        check_addresses(host, [literal], allow)
        return
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(SUBMIT_RESOLVE_SECONDS):
            infos = await loop.getaddrinfo(host, _port(parts), type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return
    check_addresses(host, _unique(list(infos)), allow)
