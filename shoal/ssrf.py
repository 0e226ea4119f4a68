"""The SSRF guard for webhook URLs.

A webhook URL is the one place where a client makes shoal's servers open a
connection. Only globally reachable unicast addresses are reachable, as IANA's
special-purpose registries define them (`shoal.special_addresses`, IPv4
addresses embedded in IPv6 included), and only on the HTTP(S) ports
(`SHOAL_WEBHOOK_PORTS`, 80 and 443 by default), so a webhook cannot knock on
a mail server or a database. Operators exempt hosts or networks with
SHOAL_WEBHOOK_ALLOW_HOSTS (local runs, tests, an in-cluster receiver); an
exempt destination may use any port.

The check runs at submit time and again at delivery, after resolution; the
delivery then connects to an address that was checked, so DNS cannot change
the answer in between (rebinding). Refusals never name what a name resolved
to, and delivery errors never echo the socket's error, so neither can be used
to map a network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from shoal.errors import InvalidRequest
from shoal.special_addresses import IPAddress, is_public

__all__ = [
    "MAX_URL_LENGTH",
    "Allowlist",
    "BlockedAddress",
    "IPAddress",
    "check_at_submit",
    "is_public",
    "parse_url",
    "resolve",
]

MAX_URL_LENGTH = 2048
SUBMIT_RESOLVE_SECONDS = 2.0
HTTP_PORTS = frozenset({80, 443})


class BlockedAddress(InvalidRequest):
    code = "webhook_url_blocked"


@dataclass(frozen=True)
class Allowlist:
    """What the operator opened beyond public addresses on the HTTP(S) ports."""

    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    ports: frozenset[int] = HTTP_PORTS

    @classmethod
    def parse(cls, entries: Iterable[str], ports: Iterable[int] = HTTP_PORTS) -> Allowlist:
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks), frozenset(ports))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


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


def port_of(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _blocked(host: str) -> BlockedAddress:
    what = "is" if _literal(host) is not None else "resolves to"
    return BlockedAddress(
        f"webhook host {host!r} {what} a private, loopback, link-local or otherwise "
        "non-public address; shoal does not send webhooks there "
        "(operators: SHOAL_WEBHOOK_ALLOW_HOSTS)"
    )


def check_addresses(
    parts: SplitResult, addresses: list[IPAddress], allow: Allowlist
) -> list[IPAddress]:
    """The addresses a connection may use; raises BlockedAddress if any is refused.

    All must pass: a name that resolves to one public and one private address
    is refused rather than left to chance. An exempt host or network may use
    any port; every other destination only the allowed (HTTP) ports.
    """
    host = parts.hostname or ""
    if allow.allows_host(host):
        return addresses
    exempt = [allow.allows_address(address) for address in addresses]
    if not all(ok or is_public(address) for ok, address in zip(exempt, addresses, strict=True)):
        raise _blocked(host)
    port = port_of(parts)
    if port not in allow.ports and not all(exempt):
        allowed = ", ".join(str(p) for p in sorted(allow.ports))
        raise BlockedAddress(
            f"webhook URL port {port} is not allowed; use one of {allowed} "
            "(operators: SHOAL_WEBHOOK_PORTS)"
        )
    return addresses


def _unique(infos: Iterable[tuple[object, ...]]) -> list[IPAddress]:
    seen: dict[IPAddress, None] = {}
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        seen[ipaddress.ip_address(str(sockaddr[0]).split("%")[0])] = None
    return list(seen)


def resolve(url: str, allow: Allowlist) -> tuple[SplitResult, list[IPAddress]]:
    """Resolve the URL's host and check every address (blocking; for workers).

    OSError when the name does not resolve (DNS may come back: retry later).
    """
    parts = parse_url(url)
    host = parts.hostname or ""
    literal = _literal(host)
    if literal is not None:
        return parts, check_addresses(parts, [literal], allow)
    infos = socket.getaddrinfo(host, port_of(parts), type=socket.SOCK_STREAM)
    return parts, check_addresses(parts, _unique(infos), allow)


async def check_at_submit(url: str, allow: Allowlist) -> None:
    """Refuse a URL that is invalid or points somewhere private.

    A name that does not resolve now is accepted: DNS may be briefly down, and
    the delivery checks again (and retries) anyway.
    """
    parts = parse_url(url)
    host = parts.hostname or ""
    literal = _literal(host)
    if literal is not None:
        check_addresses(parts, [literal], allow)
        return
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(SUBMIT_RESOLVE_SECONDS):
            infos = await loop.getaddrinfo(host, port_of(parts), type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return
    check_addresses(parts, _unique(infos), allow)
