"""SSRF checks: address classes, odd spellings, IPv6 forms that embed IPv4, the allowlist,
schemes, and resolution of names (every resolved address is checked)."""

from __future__ import annotations

import ipaddress

import pytest

from conveyor.handlers.webhook.ssrf import (
    AddressPolicy,
    DestinationRefused,
    ResolutionFailed,
    check_destination,
    parse_ipv4_aton,
    parse_target,
)

DEFAULT = AddressPolicy()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", "cloud metadata"),  # 6to4 of 169.254.169.254
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ],
)
def test_refused_addresses(address: str, reason: str) -> None:
    refusal = DEFAULT.refusal(ipaddress.ip_address(address))
    assert refusal is not None and refusal.startswith(reason), refusal


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert DEFAULT.refusal(ipaddress.ip_address(address)) is None


def test_nat64_and_mapped_forms_of_public_addresses_pass() -> None:
    assert DEFAULT.refusal(ipaddress.ip_address("::ffff:8.8.8.8")) is None
    assert DEFAULT.refusal(ipaddress.ip_address("64:ff9b::808:808")) is None


def test_short_forms_fill_the_last_bytes() -> None:
    assert str(parse_ipv4_aton("999")) == "0.0.3.231"
    assert str(parse_ipv4_aton("10.65535")) == "10.0.255.255"


@pytest.mark.parametrize(
    "spelling",
    ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001", "017700000001", "0x7F.0.0.1"],
)
def test_odd_spellings_normalise_to_loopback(spelling: str) -> None:
    assert parse_ipv4_aton(spelling) == ipaddress.ip_address("127.0.0.1")
    target = parse_target(f"http://{spelling}:8080/x?y=1")
    assert target.host == "127.0.0.1" and target.port == 8080
    assert target.url == "http://127.0.0.1:8080/x?y=1"


@pytest.mark.parametrize("spelling", ["0300.0250.0.1", "3232235521", "0xc0a80001"])
def test_odd_spellings_of_private_addresses(spelling: str) -> None:
    assert parse_ipv4_aton(spelling) == ipaddress.ip_address("192.168.0.1")


@pytest.mark.parametrize("text", ["1.2.3.4.5", "256.1.1.1", "08.1.1.1", "1..2", "0x", "1.2.3.4 x"])
def test_not_inet_aton_addresses(text: str) -> None:
    assert parse_ipv4_aton(text) is None


@pytest.mark.parametrize("url", ["http://1.2.3.4.5/", "http://08.1.1.1/", "http://4294967296/"])
def test_numeric_looking_hosts_that_are_not_addresses_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused, match="neither a name nor a valid address"):
        parse_target(url)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "javascript:alert(1)", "http:///x"],
)
def test_only_http_and_https_with_a_host(url: str) -> None:
    with pytest.raises(DestinationRefused):
        parse_target(url)


def test_ipv6_literals_and_zone_ids() -> None:
    target = parse_target("https://[::FFFF:127.0.0.1]:8443/p")
    assert target.host == "::ffff:7f00:1" and target.port == 8443
    assert target.breaker_key == "[::ffff:7f00:1]:8443"
    with pytest.raises(DestinationRefused, match="zone"):
        parse_target("http://[fe80::1%25eth0]/")


async def test_literal_refused_without_resolution() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal must not be resolved")

    for url in ("http://0x7f.1:9/", "http://[::ffff:127.0.0.1]:9/", "http://2130706433/"):
        with pytest.raises(DestinationRefused, match="loopback"):
            await check_destination(url, DEFAULT, resolver)


async def test_every_resolved_address_is_checked() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("rebind.example", 443)
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(DestinationRefused, match=r"private address 10\.0\.0\.7"):
        await check_destination("https://rebind.example/hook", DEFAULT, resolver)


async def test_resolved_public_addresses_are_returned_for_pinning() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "2606:2800:220:1::248"]

    dest = await check_destination("https://good.example/hook", DEFAULT, resolver)
    assert [str(a) for a in dest.addresses] == ["93.184.216.34", "2606:2800:220:1::248"]
    assert dest.target.url == "https://good.example/hook"


async def test_localhost_is_resolved_by_the_system_and_refused() -> None:
    with pytest.raises(DestinationRefused, match="loopback"):
        await check_destination("http://localhost:1/", DEFAULT)


async def test_unresolvable_name_is_retryable() -> None:
    with pytest.raises(ResolutionFailed):
        await check_destination("http://no-such-host.invalid/", DEFAULT)


async def test_allowlist_permits_only_its_networks() -> None:
    policy = AddressPolicy.parse("127.0.0.0/8, 10.1.0.0/16")
    assert (await check_destination("http://127.0.0.1:5/", policy)).addresses
    assert (await check_destination("http://[::ffff:127.0.0.1]:5/", policy)).addresses
    assert (await check_destination("http://10.1.2.3/", policy)).addresses
    with pytest.raises(DestinationRefused, match="private"):
        await check_destination("http://10.2.0.1/", policy)
    with pytest.raises(DestinationRefused, match="cloud metadata"):
        await check_destination("http://169.254.169.254/latest/meta-data/", policy)


def test_allowlist_from_environment() -> None:
    policy = AddressPolicy.from_env({"CONVEYOR_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128"})
    assert [str(n) for n in policy.allowed_networks] == ["127.0.0.0/8", "::1/128"]
    assert AddressPolicy.from_env({}).allowed_networks == ()
    with pytest.raises(ValueError):
        AddressPolicy.parse("not-a-network")
