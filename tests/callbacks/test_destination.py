"""The SSRF guard: which callback destinations are refused, what the allow-list opens, and that the addresses
the delivery connects to are the ones the guard passed (a second DNS answer cannot slip in)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from gateway_core.callbacks.destination import (
    AddressPolicy,
    GuardedResolver,
    RefusedDestination,
    parse_destination,
    refused_class,
)
from gateway_core.callbacks.settings import networks


def resolving(answers: dict[str, list[str]]) -> Any:
    """A getaddrinfo that answers from the table (as a DNS server would), counting the lookups."""
    calls: list[str] = []

    async def getaddrinfo(host: str, port: int, *, family: int = 0, type: int = 0) -> list[tuple[Any, ...]]:
        calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = []
        for address in answers[host]:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos

    getaddrinfo.calls = calls  # type: ignore[attr-defined]
    return getaddrinfo


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
        ("2002:7f00:1::", "loopback"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
    ],
)
def test_each_refused_class_of_address_is_refused_by_default(address, why):
    reason = AddressPolicy().refusal(ipaddress.ip_address(address))

    assert reason is not None
    assert why in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"])
def test_a_public_address_passes(address):
    assert refused_class(ipaddress.ip_address(address)) is None
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) is None


def test_the_allow_list_opens_the_ranges_it_names_and_no_others():
    policy = AddressPolicy(networks("127.0.0.1/32,10.0.0.0/8"))

    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("10.200.0.5")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) is not None
    assert policy.refusal(ipaddress.ip_address("192.168.0.1")) is not None


def test_allowing_the_link_local_range_does_not_open_the_metadata_service_unless_it_is_named():
    ranged = AddressPolicy(networks("169.254.0.0/16"))
    named = AddressPolicy(networks("169.254.169.254/32"))
    metadata = ipaddress.ip_address("169.254.169.254")

    assert ranged.refusal(ipaddress.ip_address("169.254.3.4")) is None
    assert ranged.refusal(metadata) is not None
    assert named.refusal(metadata) is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/x", "http"),
        ("file:///etc/passwd", "http"),
        ("gopher://example.com/", "http"),
        ("example.com/hook", "http"),
        ("http:///hook", "no host"),
        ("http://example.com:99999/", "(?i)port"),
    ],
)
def test_a_url_that_is_not_http_with_a_host_is_refused(url, says):
    with pytest.raises(RefusedDestination, match=says):
        parse_destination(url)


def test_a_literal_loopback_address_is_refused_with_the_flag_that_would_allow_it():
    policy = AddressPolicy()

    with pytest.raises(RefusedDestination) as refused:
        policy.check_literal(parse_destination("http://127.0.0.1:8080/hook"))

    assert "loopback" in str(refused.value)
    assert "--callback-allow 127.0.0.1/32" in str(refused.value)


def test_a_bracketed_ipv6_literal_is_checked():
    with pytest.raises(RefusedDestination, match="loopback"):
        AddressPolicy().check_literal(parse_destination("http://[::1]:8080/hook"))


@pytest.mark.asyncio
async def test_a_name_that_resolves_to_loopback_is_refused_through_the_real_resolver():
    with pytest.raises(RefusedDestination, match=r"localhost resolves to .*loopback"):
        await AddressPolicy().checked("localhost", 80, asyncio.get_running_loop().getaddrinfo)


@pytest.mark.asyncio
async def test_a_name_that_resolves_to_nothing_is_refused():
    with pytest.raises(RefusedDestination, match="does not resolve"):
        await AddressPolicy().checked("nowhere.test", 80, resolving({}))


@pytest.mark.asyncio
async def test_the_resolver_returns_only_the_addresses_that_passed():
    getaddrinfo = resolving({"mixed.test": ["10.0.0.7", "93.184.216.34", "127.0.0.1", "2606:4700:4700::1111"]})
    resolver = GuardedResolver(AddressPolicy(), getaddrinfo)

    results = await resolver.resolve("mixed.test", 443, family=socket.AF_UNSPEC)

    assert [result["host"] for result in results] == ["93.184.216.34", "2606:4700:4700::1111"]
    assert {result["hostname"] for result in results} == {"mixed.test"}  # TLS SNI and certificate name
    assert {result["port"] for result in results} == {443}


@pytest.mark.asyncio
async def test_the_resolver_refuses_a_name_whose_every_address_is_refused():
    resolver = GuardedResolver(AddressPolicy(), resolving({"inside.test": ["10.0.0.7", "192.168.0.2"]}))

    with pytest.raises(RefusedDestination, match=r"inside\.test resolves to 10\.0\.0\.7, which is a private address"):
        await resolver.resolve("inside.test", 80)


@pytest.mark.asyncio
async def test_each_resolution_checks_the_answer_it_got_so_a_rebound_name_is_refused():
    answers = {"rebind.test": ["93.184.216.34"]}
    getaddrinfo = resolving(answers)
    resolver = GuardedResolver(AddressPolicy(), getaddrinfo)
    assert [r["host"] for r in await resolver.resolve("rebind.test", 80)] == ["93.184.216.34"]

    answers["rebind.test"] = ["127.0.0.1"]  # the attacker's DNS changes its answer after the first check

    with pytest.raises(RefusedDestination, match="loopback"):
        await resolver.resolve("rebind.test", 80)
    assert getaddrinfo.calls == ["rebind.test", "rebind.test"]
