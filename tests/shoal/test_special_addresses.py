"""IANA's special-purpose registries as the SSRF guard reads them, one address per row."""

from __future__ import annotations

import ipaddress

import pytest

from shoal.special_addresses import IPV4_SPECIAL, IPV6_SPECIAL, embedded_ipv4, is_public

# One address inside every entry of the IPv4 Special-Purpose Address Registry,
# with the registry's "Globally Reachable" verdict for it (N/A: refused).
IPV4_REGISTRY = [
    ("0.1.2.3", False),  # "This network"
    ("0.0.0.0", False),  # "This host on this network"
    ("10.20.30.40", False),  # Private-Use
    ("100.64.0.1", False), ("100.127.255.254", False),  # Shared Address Space (CGNAT)
    ("100.100.100.200", False),  # ... where Alibaba Cloud keeps its metadata service
    ("127.0.0.1", False), ("127.255.255.254", False),  # Loopback
    ("169.254.169.254", False), ("169.254.0.1", False),  # Link Local: cloud metadata
    ("172.16.0.1", False), ("172.31.255.254", False),  # Private-Use
    ("192.0.0.1", False),  # IPv4 Service Continuity Prefix (192.0.0.0/29)
    ("192.0.0.8", False),  # IPv4 dummy address
    ("192.0.0.9", True),  # Port Control Protocol Anycast: reachable inside 192.0.0.0/24
    ("192.0.0.10", True),  # TURN Anycast
    ("192.0.0.100", False),  # IETF Protocol Assignments, the rest of the /24
    ("192.0.0.170", False), ("192.0.0.171", False),  # NAT64/DNS64 Discovery
    ("192.0.2.1", False),  # TEST-NET-1
    ("192.31.196.1", True),  # AS112-v4
    ("192.52.193.1", True),  # AMT
    ("192.88.99.1", False),  # Deprecated (6to4 Relay Anycast): N/A
    ("192.88.99.2", False),  # 6a44-relay anycast address
    ("192.168.1.1", False),  # Private-Use
    ("192.175.48.1", True),  # Direct Delegation AS112 Service
    ("198.18.0.1", False), ("198.19.255.254", False),  # Benchmarking
    ("198.51.100.7", False),  # TEST-NET-2
    ("203.0.113.9", False),  # TEST-NET-3
    ("240.0.0.1", False), ("250.1.2.3", False),  # Reserved
    ("255.255.255.255", False),  # Limited Broadcast
    # Outside the registry: multicast is not unicast, everything else is public.
    ("224.0.0.1", False), ("239.255.255.250", False),
    ("8.8.8.8", True), ("1.1.1.1", True), ("93.184.216.34", True), ("100.63.255.255", True),
    ("100.128.0.0", True), ("172.32.0.1", True), ("192.0.1.1", True), ("198.20.0.1", True),
    ("223.255.255.255", True),
]  # fmt: skip

IPV6_REGISTRY = [
    ("::1", False),  # Loopback Address
    ("::", False),  # Unspecified Address
    ("::ffff:8.8.8.8", False),  # IPv4-mapped Address: the registry says not reachable
    ("64:ff9b::808:808", True),  # IPv4-IPv6 Translat. (NAT64) of 8.8.8.8
    ("64:ff9b:1::808:808", False),  # local-use NAT64 (RFC 8215), whatever it carries
    ("64:ff9b:1:ffff::1", False),
    ("100::1", False), ("100::ffff:ffff:ffff:ffff", False),  # Discard-Only
    ("100:0:0:1::1", False),  # Dummy IPv6 Prefix (RFC 9780)
    ("2001:1::1", True), ("2001:1::2", True), ("2001:1::3", True),  # anycast in 2001::/23
    ("2001:1::4", False),  # IETF Protocol Assignments, the rest of 2001::/23
    ("2001:2::1", False),  # Benchmarking
    ("2001:3::1", True),  # AMT
    ("2001:4:112::1", True),  # AS112-v6
    ("2001:10::1", False),  # Deprecated (previously ORCHID): N/A
    ("2001:20::1", True),  # ORCHIDv2
    ("2001:30::1", True),  # Drone Remote ID Protocol Entity Tags
    ("2001:db8::1", False),  # Documentation
    ("2620:4f:8000::1", True),  # Direct Delegation AS112 Service
    ("3fff::1", False), ("3fff:fff::1", False),  # Documentation (RFC 9637)
    ("5f00::1", False),  # Segment Routing (SRv6) SIDs
    ("fc00::1", False), ("fd00:ec2::254", False),  # Unique-Local (AWS's IPv6 metadata)
    ("fe80::1", False), ("febf::1", False),  # Link-Local Unicast
    # Outside the registry: only 2000::/3 is global unicast.
    ("fec0::1", False),  # deprecated site-local
    ("ff02::1", False), ("ff0e::1", False),  # multicast
    ("4000::1", False), ("1::1", False),  # reserved by the IETF
    ("2606:4700:4700::1111", True), ("2a00:1450:4001::1", True), ("2a01:4f8::1", True),
]  # fmt: skip

# IPv4 embedded in IPv6: judged by what they carry.
EMBEDDED = [
    ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False),  # mapped
    ("::127.0.0.1", False), ("::8.8.8.8", False),  # compatible (deprecated, outside 2000::/3)
    ("::ffff:0:10.0.0.1", False),  # IPv4-translated (SIIT)
    ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::7f00:1", False),  # NAT64 of metadata, loopback
    ("64:ff9b::a00:1", False), ("64:ff9b::c0a8:101", False),  # NAT64 of private
    ("64:ff9b::c000:9", True),  # NAT64 of 192.0.0.9 (PCP anycast, reachable)
    ("2002:7f00:1::1", False), ("2002:a9fe:a9fe::1", False),  # 6to4 of loopback, metadata
    ("2002:a00:1::1", False), ("2002:c000:201::1", False),  # 6to4 of private, TEST-NET-1
    ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
    # Teredo: server 65.54.227.120 (public); client = ~last 32 bits.
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True),  # client 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # client 192.0.2.45 (TEST-NET-1)
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # client 127.0.0.1
    ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", False),  # server 127.0.0.1
    ("2001:0:a9fe:a9fe::", False),  # server metadata, client 255.255.255.255
    # ISATAP interface identifiers under a global /64.
    ("2001:4860:0:1::5efe:7f00:1", False), ("2001:4860:0:1:200:5efe:a9fe:a9fe", False),
    ("2001:4860:0:1:200:5efe:808:808", True),
]  # fmt: skip


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(("address", "public"), IPV4_REGISTRY + IPV6_REGISTRY + EMBEDDED)
def test_each_registry_entry_decides(address: str, public: bool) -> None:
    assert is_public(_address(address)) is public


def test_every_registry_entry_is_covered_by_a_row() -> None:
    rows = [_address(text) for text, _ in IPV4_REGISTRY + IPV6_REGISTRY + EMBEDDED]
    for block in IPV4_SPECIAL + IPV6_SPECIAL:
        assert any(address in block.network for address in rows), block


def test_teredo_carries_server_and_client() -> None:
    # RFC 4380's example: server 65.54.227.120, client 192.0.2.45 (obfuscated).
    server, client = embedded_ipv4(ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2"))
    assert (str(server), str(client)) == ("65.54.227.120", "192.0.2.45")


def test_local_use_nat64_carries_its_address_at_rfc_6052_offsets() -> None:
    # /48: the IPv4 address spans bits 48-63 and 72-87 (bits 64-71 are zero).
    address = ipaddress.IPv6Address("64:ff9b:1:a9fe:a9:fe00::")
    assert [str(v4) for v4 in embedded_ipv4(address)] == ["169.254.169.254"]
