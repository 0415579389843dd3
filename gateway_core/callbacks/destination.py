"""Where a callback may go: the SSRF guard.

A `reply_to` is the app's, so it could name anything the gateway's box can reach: its loopback services, the
private network, a cloud's metadata service. Only http(s) URLs are taken, and every address the host resolves
to is checked against the refused classes below (unless an operator's `--callback-allow` range holds it).

The check runs at each delivery, inside the connection itself: `GuardedResolver` is the aiohttp resolver of the
delivery session, so the addresses aiohttp connects to are exactly the ones that passed. A name whose DNS answer
changes between a check and the connection (DNS rebinding) gains nothing, because there is no second lookup.
The URL's own name stays the Host header and the TLS SNI and certificate name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from .settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# loop.getaddrinfo's shape: (host, port, family=, type=) -> [(family, type, proto, canonname, sockaddr)]
GetAddrInfo = Callable[..., Awaitable[list[tuple[Any, ...]]]]

# Cloud metadata services (AWS, GCP, Azure, OpenStack, ...; AWS's IPv6 one). Link-local or private already,
# but named: an operator allowing a whole link-local or private range must name these addresses to open them.
METADATA: frozenset[Address] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)
CGNAT = ipaddress.ip_network(
    "100.64.0.0/10"
)  # shared address space (RFC 6598): Python calls it neither private nor global
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv6 address that carries an IPv4 one


class RefusedDestination(OSError):
    """A callback URL that may not be delivered to: why, in words a user can act on.

    An OSError so that, raised inside aiohttp's resolver, it reaches the caller as the cause of the connection
    error rather than as a crash of the connector.
    """


@dataclass(frozen=True, slots=True)
class Destination:
    url: URL
    host: str
    port: int
    literal: Address | None  # the host when it is an IP address: no lookup happens for it


def parse_destination(url: str) -> Destination:
    """The URL's scheme, host and port, or RefusedDestination saying what is wrong with it."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as error:
        raise RefusedDestination(f"'{url}' is not a URL ({error})") from error
    if parsed.scheme not in ("http", "https"):
        raise RefusedDestination(f"'{url}' is not an http:// or https:// URL; callbacks are sent only over HTTP(S)")
    if not parsed.host:
        raise RefusedDestination(f"'{url}' has no host: write e.g. https://app.example.com/hooks/corral")
    try:
        port = parsed.port
    except ValueError as error:
        raise RefusedDestination(f"'{url}' has an invalid port ({error})") from error
    if port is None or not 0 < port < 65536:
        raise RefusedDestination(f"'{url}' has an invalid port")
    host = parsed.host
    try:
        literal: Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    return Destination(url=parsed, host=host, port=port, literal=literal)


class AddressPolicy:
    """Which addresses a callback may reach: public ones, and refused ones inside the operator's allow-list."""

    def __init__(self, allow: Sequence[Network] = ()) -> None:
        self.allow = tuple(allow)

    def refusal(self, address: Address) -> str | None:
        """Why `address` is refused ("a loopback address"), or None when a callback may go there."""
        reason = refused_class(address)
        if reason is None:
            return None
        if address in METADATA:
            # Only an allow entry that names the service itself (/32, /128) opens it, not a range around it.
            allowed = any(address in network and network.num_addresses == 1 for network in self.allow)
        else:
            allowed = any(address in network for network in self.allow)
        return None if allowed else reason

    def check_literal(self, destination: Destination) -> None:
        if destination.literal is not None:
            reason = self.refusal(destination.literal)
            if reason is not None:
                raise RefusedDestination(self._message(destination.host, destination.literal, reason))

    def _message(self, host: str, address: Address, reason: str) -> str:
        network = ipaddress.ip_network(address)
        named = host if host.strip("[]") == str(address) else f"{host} resolves to {address}, which"
        return (
            f"{named} is {reason}; callbacks go only to public addresses unless the operator allows the range "
            f"(corral-core --callback-allow {network})"
        )

    async def checked(
        self, host: str, port: int, getaddrinfo: GetAddrInfo, family: int = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        """Resolve `host` once and keep the addresses that pass; RefusedDestination when none does."""
        try:
            infos = await getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        except OSError as error:
            raise RefusedDestination(f"{host} does not resolve ({error})") from error
        passed: list[ResolveResult] = []
        first_refusal: str | None = None
        for family, _type, proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            reason = self.refusal(address)
            if reason is not None:
                first_refusal = first_refusal or self._message(host, address, reason)
                continue
            result: ResolveResult = {
                "hostname": host,  # what aiohttp gives TLS as the server name
                "host": str(address) if address.version == 4 else sockaddr[0],
                "port": port,
                "family": family,
                "proto": proto,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            if result not in passed:
                passed.append(result)
        if not passed:
            raise RefusedDestination(first_refusal or f"{host} resolves to no address")
        return passed


def refused_class(address: Address) -> str | None:
    """The class of address no callback may reach by default, in words; None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = (
            address.ipv4_mapped
            or address.sixtofour
            or (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64 else None)
        )
        if embedded is not None:  # judged as the IPv4 address it reaches
            reason = refused_class(embedded)
            return reason if reason is None else f"{reason} (as {address})"
        if address.teredo is not None:
            return "a Teredo tunnel address"
    if address in METADATA:
        return "a cloud metadata service address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "a shared (CGNAT) address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a reserved address"
    return None


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for callback deliveries: resolves once, returns only addresses the policy passes."""

    def __init__(self, policy: AddressPolicy, getaddrinfo: GetAddrInfo | None = None) -> None:
        self._policy = policy
        self._getaddrinfo = getaddrinfo

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        getaddrinfo = self._getaddrinfo or asyncio.get_running_loop().getaddrinfo
        return await self._policy.checked(host, port, getaddrinfo, family)

    async def close(self) -> None:
        pass
