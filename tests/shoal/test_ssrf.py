"""The SSRF guard: only public unicast addresses, unless the operator allows more."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from shoal.errors import InvalidRequest
from shoal.ssrf import Allowlist, BlockedAddress, check_at_submit, is_public, parse_url, resolve

NOBODY = Allowlist.parse([])


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "192.168.1.1",  # loopback, private
        "169.254.169.254", "169.254.0.1",  # link-local: cloud metadata
        "100.64.0.1", "100.100.100.200",  # shared address space (CGNAT; Alibaba metadata)
        "0.0.0.0", "224.0.0.1", "239.255.255.250", "255.255.255.255",  # unspecified, multicast
        "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1",  # IPv6 equivalents
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",  # IPv4-mapped
        "2002:7f00:0001::1", "2002:a9fe:a9fe::1",  # 6to4 wrapping loopback / metadata
        "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1",  # NAT64 wrapping metadata / loopback
    ],
)  # fmt: skip
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(BlockedAddress):
        resolve(f"http://[{address}]/hook" if ":" in address else f"http://{address}/hook", NOBODY)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))
    url = f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook"
    _, addresses = resolve(url, NOBODY)
    assert addresses == [ipaddress.ip_address(address)]


def test_names_are_checked_after_resolution() -> None:
    with pytest.raises(BlockedAddress, match="localhost") as raised:
        resolve("http://localhost/hook", NOBODY)
    # What the name resolved to is not told: it would map the operator's network.
    assert "127.0.0.1" not in raised.value.message and "::1" not in raised.value.message


@pytest.mark.parametrize("port", [22, 25, 6379, 8080, 9200, 11211])
def test_only_http_ports_by_default(port: int) -> None:
    with pytest.raises(BlockedAddress, match=f"port {port} is not allowed"):
        resolve(f"https://93.184.216.34:{port}/hook", NOBODY)
    resolve("https://93.184.216.34:443/hook", NOBODY)
    resolve("http://93.184.216.34/hook", NOBODY)


def test_the_allowed_ports_are_a_setting() -> None:
    guard = Allowlist.parse([], ports=[8443])
    resolve("https://93.184.216.34:8443/hook", guard)
    with pytest.raises(BlockedAddress):
        resolve("https://93.184.216.34/hook", guard)


def test_an_exempt_destination_may_use_any_port() -> None:
    resolve("http://127.0.0.1:9000/hook", Allowlist.parse(["127.0.0.0/8"]))
    resolve("http://localhost:9000/hook", Allowlist.parse(["localhost"]))


@pytest.mark.parametrize(
    ("entries", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:9000/hook"),
        (["127.0.0.0/8"], "http://127.0.0.5/hook"),
        (["localhost"], "http://localhost/hook"),
        (["10.0.0.0/8", "::1"], "http://[::1]:81/hook"),
    ],
)
def test_the_allowlist_exempts_hosts_and_networks(entries: list[str], url: str) -> None:
    resolve(url, Allowlist.parse(entries))


def test_an_allowed_network_does_not_open_others() -> None:
    with pytest.raises(BlockedAddress):
        resolve("http://169.254.169.254/latest/meta-data", Allowlist.parse(["127.0.0.0/8"]))


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "example.com/hook", "http:///nohost", "https://user:pw@example.com/",
     "http://example.com:99999/", "javascript:alert(1)", "https://" + "a" * 2050 + ".com"],
)  # fmt: skip
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_url(url)
    assert raised.value.code == "invalid_webhook_url"


def test_submit_check_blocks_literals_and_names_but_tolerates_dns_failure() -> None:
    with pytest.raises(BlockedAddress):
        asyncio.run(check_at_submit("http://10.1.2.3/hook", NOBODY))
    with pytest.raises(BlockedAddress):
        asyncio.run(check_at_submit("http://localhost/hook", NOBODY))
    # Unresolvable now (no DNS here): accepted; delivery checks again.
    asyncio.run(check_at_submit("https://hooks.invalid/tts", NOBODY))
