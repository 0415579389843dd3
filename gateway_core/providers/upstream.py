"""The HTTP client for talking to providers: one aiohttp session (a keep-alive pool) per provider.

aiohttp, not httpx, on this path: against a local upstream httpx spent 0.7 ms of CPU per request at one
client and 1.5 ms at 32 (its pool scans every connection on each request), aiohttp 0.16 and 0.09 ms
(bench/README.md). The admin client and the tests still use httpx, where that cost does not matter.
"""

from __future__ import annotations

import errno
import socket
import urllib.request
from urllib.parse import urlsplit

import aiohttp

from .config import ProviderConfig

UpstreamResponse = aiohttp.ClientResponse
# What "the upstream could not be reached or broke off" looks like; both are worth failing over.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError)

# Long reads: a large prompt can take minutes before the first byte. Connect failures must be quick to fail over.
# `connect` also bounds the wait for a free connection when the pool is full.
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30.0, sock_connect=3.0, sock_read=600.0)
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=5.0, sock_connect=2.0)
POOL_SIZE = 256
KEEPALIVE_S = 30.0
# llama-server (cpp-httplib) answers "Keep-Alive: timeout=5": an idle connection must be dropped before it does.
LLAMA_SERVER_KEEPALIVE_S = 4.0


def env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) names for this URL, read once per session."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or (parts.hostname and urllib.request.proxy_bypass(parts.hostname)):
        return None
    return proxy


def make_session(config: ProviderConfig) -> aiohttp.ClientSession:
    """Must be called inside the running event loop that will use it."""
    keepalive = LLAMA_SERVER_KEEPALIVE_S if config.type == "llama-server" else KEEPALIVE_S
    connector = aiohttp.TCPConnector(limit=POOL_SIZE, limit_per_host=0, keepalive_timeout=keepalive)
    return aiohttp.ClientSession(
        connector=connector, timeout=TIMEOUT, proxy=env_proxy(config.base_url), raise_for_status=False
    )


def stream_request_headers(config: ProviderConfig, headers: dict[str, str]) -> dict[str, str]:
    """Headers for a streamed request. llama-server closes the connection after every streamed answer although it
    says keep-alive, so the pool would hand a dying connection to the next request; asking for `Connection: close`
    makes llama-server say so, and the connection is not pooled."""
    return {**headers, "connection": "close"} if config.type == "llama-server" else headers


def is_stale_connection(error: BaseException) -> bool:
    """A kept-alive connection the upstream had already closed when it was reused: the request was not answered
    (and, when the write failed, not even sent), so one retry on another connection is safe."""
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return True
    return isinstance(error, aiohttp.ClientOSError) and not isinstance(error, aiohttp.ClientConnectorError)


def describe(error: BaseException) -> str:
    """A transport error as an operator reads it: what failed, in words, then the error's kind in brackets.
    aiohttp's own text ("Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed ...]") names TLS
    settings even for plain http, and says nothing of why."""
    kind = type(error).__name__
    if isinstance(error, TimeoutError):
        return f"no answer in time ({kind})"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {error.host}:{error.port} was refused: {error.certificate_error} ({kind})"
    if isinstance(error, aiohttp.ClientConnectorError):
        where = f"{error.host}:{error.port}"
        cause = error.os_error
        if isinstance(cause, socket.gaierror):
            return f"the name {error.host} does not resolve ({cause.strerror}; {kind})"
        if cause.errno == errno.ECONNREFUSED:
            return f"connection refused: nothing listens on {where} ({kind})"
        if cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT):
            return f"{where} is unreachable ({cause.strerror}; {kind})"
        return f"could not connect to {where}: {cause.strerror or cause} ({kind})"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return f"the server closed the connection without answering ({kind})"
    text = str(error)
    return f"{kind}: {text}" if text else kind
