"""One attempt at one delivery: POST the body to the URL through the SSRF guard, and say how it went.

Redirects are never followed (a 3xx is a failed attempt: the app gives the final URL as its reply_to), no proxy
from the environment is used, no cookie is kept between receivers, and each connection is used once, so every
attempt resolves (and checks) the receiver's name afresh.
"""

from __future__ import annotations

import email.utils
import ssl
from dataclasses import dataclass
from typing import Literal

import aiohttp

from gateway_core import __version__

from .destination import AddressPolicy, GetAddrInfo, GuardedResolver, RefusedDestination, parse_destination

USER_AGENT = f"Corral/{__version__} (webhooks)"
OutcomeKind = Literal["delivered", "gone", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind  # delivered: a 2xx; gone: a 410 (stop for good); failed: anything else
    status: int | None = None  # the receiver's HTTP status; None when there was no answer
    error: str | None = None
    retry_after_s: float | None = None  # what the receiver's Retry-After asked for, in seconds from now
    refused: bool = False  # the SSRF guard refused the destination


class Sender:
    """The delivery session: one aiohttp pool whose resolver is the SSRF guard. `start` on the loop, then `close`."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        timeout_s: float,
        concurrency: int,
        getaddrinfo: GetAddrInfo | None = None,
        tls: ssl.SSLContext | None = None,  # None: the system's CAs, verified against the URL's name
    ) -> None:
        self._policy = policy
        self._tls = tls
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._getaddrinfo = getaddrinfo
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self._policy, self._getaddrinfo),
            use_dns_cache=False,
            force_close=True,
            limit=self._concurrency,
            ssl=self._tls if self._tls is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, url: str, body: bytes, headers: dict[str, str], now: float) -> Outcome:
        if self._session is None:
            raise RuntimeError("Sender.send before start")
        try:
            destination = parse_destination(url)
            self._policy.check_literal(destination)  # aiohttp asks no resolver about an IP address
        except RefusedDestination as refused:
            return Outcome("failed", error=f"refused: {refused}", refused=True)
        sent = {"content-type": "application/json", "user-agent": USER_AGENT, **headers}
        try:
            async with self._session.post(destination.url, data=body, headers=sent, allow_redirects=False) as answer:
                status = answer.status
                retry_after = retry_after_s(answer.headers.get("Retry-After"), now)
                location = answer.headers.get("Location")
        except aiohttp.ClientConnectorError as error:
            if isinstance(error.os_error, RefusedDestination):
                return Outcome("failed", error=f"refused: {error.os_error}", refused=True)
            return Outcome(
                "failed", error=f"cannot connect to {destination.host}:{destination.port} ({error.os_error})"
            )
        except TimeoutError:
            return Outcome("failed", error=f"no answer within {self._timeout_s:g} s")
        except aiohttp.ClientError as error:
            return Outcome("failed", error=f"{type(error).__name__}: {error}")
        if 200 <= status < 300:
            return Outcome("delivered", status=status)
        if status == 410:
            return Outcome("gone", status=status, error="the receiver answered 410 Gone: no further attempts")
        if 300 <= status < 400:
            where = f" to {location}" if location else ""
            message = (
                f"the receiver answered {status}, a redirect{where}; redirects are not followed: give the final URL"
            )
            return Outcome("failed", status=status, error=message, retry_after_s=retry_after)
        return Outcome("failed", status=status, error=f"the receiver answered {status}", retry_after_s=retry_after)


def retry_after_s(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now`: a number of seconds, or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)
