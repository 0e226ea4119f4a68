"""Which IP addresses a server may connect to on a client's behalf: IANA's registries as data.

The decision is made here from the registries themselves, never from the
`is_global` / `is_private` flags of Python's `ipaddress`, whose answers changed
between Python versions (3.11.10, 3.12.4 and 3.13 each corrected some). Only
parsing and network containment are taken from `ipaddress`.

Sources (IANA; the tables below were taken on 2026-12-02, their newest
entries being 192.88.99.2/32 (RFC 6751) and 100:0:0:1::/64 (RFC 9780)):
- IPv4 Special-Purpose Address Registry,
  https://www.iana.org/assignments/iana-ipv4-special-registry/
- IPv6 Special-Purpose Address Registry,
  https://www.iana.org/assignments/iana-ipv6-special-registry/
- IPv4 Address Space Registry (224.0.0.0/4 is multicast) and IPv6 Address
  Space Registry (2000::/3 is the only space allocated as Global Unicast;
  ff00::/8 is multicast, fec0::/10 the deprecated site-local),
  https://www.iana.org/assignments/ipv4-address-space/ and
  https://www.iana.org/assignments/ipv6-address-space/

A registry entry's "Globally Reachable" column decides, the most specific entry
winning (192.0.0.9/32 is reachable inside the unreachable 192.0.0.0/24). Where
the column is N/A (6to4, Teredo, the deprecated blocks), the entry does not
decide by itself: 6to4 and Teredo are judged by the IPv4 addresses they carry,
a deprecated block is refused.

IPv4 addresses embedded in IPv6 are judged too, in every transition form that
carries one (a packet to the IPv6 address ends up at the IPv4 one): IPv4-mapped
::ffff:0:0/96, IPv4-compatible ::/96, IPv4-translated ::ffff:0:0:0/96, NAT64
64:ff9b::/96 and the local-use 64:ff9b:1::/48 (RFC 8215), 6to4 2002::/16,
Teredo 2001::/32 (its server and its client), and ISATAP interface
identifiers (::0:5efe:a.b.c.d and ::200:5efe:a.b.c.d, under any /64).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# The registry's "Globally Reachable" column: True, False, or N/A.
Reachable = Literal[True, False, "n/a"]


@dataclass(frozen=True)
class Block:
    network: Network
    name: str
    rfc: str
    reachable: Reachable


def _blocks(rows: list[tuple[str, str, str, Reachable]]) -> tuple[Block, ...]:
    return tuple(Block(ipaddress.ip_network(net), name, rfc, glob) for net, name, rfc, glob in rows)


# fmt: off
IPV4_SPECIAL = _blocks([
    ("0.0.0.0/8", '"This network"', "RFC 791", False),
    ("0.0.0.0/32", '"This host on this network"', "RFC 1122", False),
    ("10.0.0.0/8", "Private-Use", "RFC 1918", False),
    ("100.64.0.0/10", "Shared Address Space", "RFC 6598", False),
    ("127.0.0.0/8", "Loopback", "RFC 1122", False),
    ("169.254.0.0/16", "Link Local", "RFC 3927", False),
    ("172.16.0.0/12", "Private-Use", "RFC 1918", False),
    ("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890", False),
    ("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", False),
    ("192.0.0.8/32", "IPv4 dummy address", "RFC 7600", False),
    ("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", True),
    ("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    ("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880", False),
    ("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880", False),
    ("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", False),
    ("192.31.196.0/24", "AS112-v4", "RFC 7535", True),
    ("192.52.193.0/24", "AMT", "RFC 7450", True),
    ("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", "n/a"),
    ("192.88.99.2/32", "6a44-relay anycast address", "RFC 6751", False),
    ("192.168.0.0/16", "Private-Use", "RFC 1918", False),
    ("192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", True),
    ("198.18.0.0/15", "Benchmarking", "RFC 2544", False),
    ("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", False),
    ("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", False),
    ("240.0.0.0/4", "Reserved", "RFC 1112", False),
    ("255.255.255.255/32", "Limited Broadcast", "RFC 8190", False),
])

IPV6_SPECIAL = _blocks([
    ("::1/128", "Loopback Address", "RFC 4291", False),
    ("::/128", "Unspecified Address", "RFC 4291", False),
    ("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", False),
    ("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052", True),
    ("64:ff9b:1::/48", "IPv4-IPv6 Translat. (local use)", "RFC 8215", False),
    ("100::/64", "Discard-Only Address Block", "RFC 6666", False),
    ("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", False),
    ("2001::/23", "IETF Protocol Assignments", "RFC 2928", False),
    ("2001::/32", "TEREDO", "RFC 4380", "n/a"),
    ("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", True),
    ("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    ("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", True),
    ("2001:2::/48", "Benchmarking", "RFC 5180", False),
    ("2001:3::/32", "AMT", "RFC 7450", True),
    ("2001:4:112::/48", "AS112-v6", "RFC 7535", True),
    ("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", "n/a"),
    ("2001:20::/28", "ORCHIDv2", "RFC 7343", True),
    ("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", True),
    ("2001:db8::/32", "Documentation", "RFC 3849", False),
    ("2002::/16", "6to4", "RFC 3056", "n/a"),
    ("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", True),
    ("3fff::/20", "Documentation", "RFC 9637", False),
    ("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", False),
    ("fc00::/7", "Unique-Local", "RFC 4193", False),
    ("fe80::/10", "Link-Local Unicast", "RFC 4291", False),
])
# fmt: on

# Outside the special-purpose registries, the address-space registries decide.
IPV4_MULTICAST = ipaddress.IPv4Network("224.0.0.0/4")
IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# Transition forms whose last 32 bits are an IPv4 address.
_LAST_32_BITS = tuple(
    ipaddress.IPv6Network(net)
    for net in ("::ffff:0:0/96", "::/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_6TO4 = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
# ISATAP interface identifier: 0000:5efe or 0200:5efe (the u/l and g bits may vary).
_ISATAP_MASK, _ISATAP_ID = 0xFCFFFFFF, 0x00005EFE


def most_specific(address: IPAddress) -> Block | None:
    """The registry entry that decides for `address`, or None when none lists it."""
    table = IPV4_SPECIAL if address.version == 4 else IPV6_SPECIAL
    matches = [block for block in table if address in block.network]
    return max(matches, key=lambda block: block.network.prefixlen, default=None)


def _v4(bits: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(bits & 0xFFFFFFFF)


def _rfc6052(address: ipaddress.IPv6Address, prefixlen: int) -> ipaddress.IPv4Address:
    """The IPv4 address in an RFC 6052 NAT64 address (bits 64-71 are skipped)."""
    value = int(address)
    octets = [(value >> (120 - 8 * i)) & 0xFF for i in range(16)]
    start = prefixlen // 8
    carried = [octets[i] for i in range(start, 16) if i != 8][:4]
    return ipaddress.IPv4Address(bytes(carried))


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries (empty for a plain IPv6 address)."""
    value = int(address)
    if any(address in net for net in _LAST_32_BITS) and value > 1:  # not :: or ::1
        return [_v4(value)]
    if address in _LOCAL_NAT64:
        return [_rfc6052(address, 48)]
    if address in _6TO4:
        return [_v4(value >> 80)]
    if address in _TEREDO:
        return [_v4(value >> 64), _v4(~value)]  # the server; the client, obfuscated
    if (value >> 32) & _ISATAP_MASK == _ISATAP_ID:
        return [_v4(value)]
    return []


@lru_cache(maxsize=4096)
def is_public(address: IPAddress) -> bool:
    """Whether a connection to `address` reaches the public internet (unicast only)."""
    block = most_specific(address)
    if address.version == 4:
        if block is not None:
            return block.reachable is True
        return address not in IPV4_MULTICAST
    assert isinstance(address, ipaddress.IPv6Address)
    carried = embedded_ipv4(address)
    if block is not None and block.reachable == "n/a":
        # 6to4 and Teredo stand for the IPv4 addresses they carry; deprecated blocks: no.
        return bool(carried) and all(is_public(v4) for v4 in carried)
    own = block.reachable is True if block is not None else address in IPV6_GLOBAL_UNICAST
    return own and all(is_public(v4) for v4 in carried)
