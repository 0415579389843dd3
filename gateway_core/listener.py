"""The public listener's HTTP protocol: uvicorn's httptools protocol with deadlines for a request's headers and
body, a cap on open connections, and answers in OpenAI's error shape where uvicorn would write plain text.

A connection that stops mid-request would otherwise hold its socket for good. Each phase of a request has one
deadline, a single TimerHandle armed when the phase starts and cancelled when it ends:

- headers: from the connection's start for its first request, from a later request's first byte after that;
- body: from the end of the headers to the end of the body.

The idle gap between keep-alive requests stays uvicorn's own keep-alive timeout. A deadline that passes answers
408 and closes; past the connection cap a new connection is answered 503 and closed. Both close by sending the
answer, then a FIN, and reading until the client closes (at most LINGER_S): closing with the client's request
still unread would send a reset, which can destroy the answer before the client reads it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.request_id import HEADER as REQUEST_ID_HEADER
from gateway_core.contracts.request_id import new_request_id
from gateway_core.metrics import GatewayMetrics

log = logging.getLogger("corral.listener")

HEADER_TIMEOUT_S = 30.0
BODY_TIMEOUT_S = 60.0
KEEP_ALIVE_S = 30.0
MAX_CONNECTIONS_CEILING = 10_000
RESERVED_FILES = 256  # descriptors kept for the store, the admin socket, upstream pools' spares and logs
LINGER_S = 1.0
REFUSAL_LOG_EVERY_S = 10.0  # the cap's refusals and invalid HTTP are logged once per burst, and counted
UVICORN_INVALID_HTTP = "Invalid HTTP request received."  # uvicorn's own warning, one line per bad request

# The phase a connection is in; the deadline armed for it is named the same (the metric's label).
IDLE = "idle"
HEADERS = "headers"
BODY = "body"


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """How long a client may take to send a request, how long an idle connection stays, and how many may be open."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    keep_alive_s: float = KEEP_ALIVE_S
    max_connections: int = MAX_CONNECTIONS_CEILING

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s", "max_connections"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ListenerLimits.{name} must be greater than 0, not {getattr(self, name)!r}")


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (as far as the kernel allows); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (hard, 1 << 20) if hard == resource.RLIM_INFINITY else (hard,):
        if target == soft:
            return soft
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue  # an infinite hard limit is refused for NOFILE; nr_open (default 2^20) is the kernel's cap
        return int(target)
    return soft


def default_max_connections(open_file_limit: int) -> int:
    """The cap when none is given: half the descriptors left after the reserve (a proxied request may hold an
    upstream socket too), at most MAX_CONNECTIONS_CEILING."""
    return max(1, min(MAX_CONNECTIONS_CEILING, (open_file_limit - RESERVED_FILES) // 2))


def _error_body(status: int, code: str, message: str) -> bytes:
    return orjson.dumps(GatewayError(status, message, code=code).body())


class Listener:
    """What every connection of one listener shares: its limits, its count of admitted connections, its metrics,
    and the answers it sends whole."""

    def __init__(self, limits: ListenerLimits, metrics: GatewayMetrics) -> None:
        self.limits = limits
        self.admitted = 0
        self.open_connections = metrics.open_connections
        self.connections_refused = metrics.connections_refused
        self.invalid_http = metrics.invalid_http
        self.timeouts = {phase: metrics.request_timeouts.labels(phase) for phase in (HEADERS, BODY)}
        self._last_refusal_log = float("-inf")
        self._last_invalid_log = float("-inf")
        self.refused_body = _error_body(
            503,
            "too_many_connections",
            f"the gateway is at its connection cap of {limits.max_connections} open connections; retry in a "
            f"moment, or have the operator raise corral-core's --max-connections",
        )
        self.timeout_bodies = {
            HEADERS: _error_body(
                408,
                "request_timeout",
                f"the request's headers did not arrive within {limits.header_timeout_s:g} s, so the connection "
                f"was closed; send the whole request without pausing, on a new connection",
            ),
            BODY: _error_body(
                408,
                "request_timeout",
                f"the request's body did not arrive within {limits.body_timeout_s:g} s of its headers (fewer bytes "
                f"than its Content-Length, or an unfinished chunked body), so the connection was closed; send the "
                f"whole body, on a new connection",
            ),
        }
        self.invalid_http_body = _error_body(
            400,
            "invalid_http",
            "the request is not valid HTTP/1.1 (a malformed request line, header or body framing), so the "
            "connection was closed; check what the client sends",
        )

    def refused(self) -> None:
        self.connections_refused.inc()
        now = time.monotonic()
        if now - self._last_refusal_log >= REFUSAL_LOG_EVERY_S:  # one line per burst, not one per connection
            self._last_refusal_log = now
            log.warning(
                "public listener at its cap of %d connections: refusing new ones with 503 (raise --max-connections "
                "if this load is expected)",
                self.limits.max_connections,
            )

    def invalid(self) -> None:
        self.invalid_http.inc()
        now = time.monotonic()
        if now - self._last_invalid_log >= REFUSAL_LOG_EVERY_S:
            self._last_invalid_log = now
            log.warning(
                "public listener: answering requests that are not valid HTTP/1.1 with 400 (logged at most every "
                "%.0f s; corral_invalid_http_requests_total counts them)",
                REFUSAL_LOG_EVERY_S,
            )


class _DropUvicornInvalidHttp(logging.Filter):
    """uvicorn warns once per invalid request, before the listener answers it: a client sending garbage would
    write the log as fast as it sends. The listener counts them and logs once per burst instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != UVICORN_INVALID_HTTP


class ListenerProtocol(HttpToolsProtocol):
    """One connection on the public listener. Build the class for a listener with `listener_protocol`."""

    listener: ClassVar[Listener]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase = HEADERS  # the first request's header clock runs from the connection's start
        self._request = 1  # which request of the connection the phase belongs to
        self._deadline: TimerHandle | None = None
        self._deadline_phase = IDLE
        self._deadline_request = 0
        self._admitted = False
        self._answered = False  # an answer of ours was sent: what the client sends now is read and dropped
        self._linger: TimerHandle | None = None

    # -- the connection --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        listener = self.listener
        listener.open_connections.inc()
        # Refused at accept, not once its headers arrived: a connection past the cap then never holds a
        # descriptor while it waits for headers that may never come (test_refusal_does_not_wait_for_headers).
        if listener.admitted >= listener.limits.max_connections:
            self.transport = transport
            listener.refused()
            self._answer(503, listener.refused_body, b"retry-after: 1\r\n")
            return
        listener.admitted += 1
        self._admitted = True
        super().connection_made(transport)
        self._follow_phase()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.open_connections.dec()
        self._cancel_deadline()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._admitted:
            self._admitted = False
            self.listener.admitted -= 1
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:  # calls the base directly, as the parser's callbacks below do
        if self._answered:
            return
        if self._phase == IDLE:  # the next request's header clock starts with its first byte
            self._phase = HEADERS
            self._request += 1
        HttpToolsProtocol.data_received(self, data)
        phase = self._phase
        if phase == IDLE:  # the request is all here (the usual case: it came in one read), its answer not yet sent
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
        elif phase != self._deadline_phase or self._request != self._deadline_request:
            self._follow_phase()

    # -- the parser's callbacks: each moves the phase; data_received arms the deadline for where it ends -
    # (On this per-request path the base class is called directly: super() would cost a lookup each time.)

    def on_message_begin(self) -> None:
        HttpToolsProtocol.on_message_begin(self)
        if self._phase == IDLE:  # a pipelined request that began in the same read as the previous one ended
            self._phase = HEADERS
            self._request += 1

    def on_headers_complete(self) -> None:
        self._phase = BODY
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._phase = IDLE
        HttpToolsProtocol.on_message_complete(self)

    # -- deadlines -------------------------------------------------------------------------------------

    def _follow_phase(self) -> None:
        """Arm the deadline of the phase the connection is now in, in place of the one before."""
        self._cancel_deadline()
        if self._answered:
            return
        phase = self._phase
        self._deadline_phase = phase
        self._deadline_request = self._request
        if phase == HEADERS:
            self._deadline = self.loop.call_later(self.listener.limits.header_timeout_s, self._deadline_passed)
        elif phase == BODY:
            self._deadline = self.loop.call_later(self.listener.limits.body_timeout_s, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self._answered or self.transport.is_closing():
            return
        phase = self._deadline_phase
        cycle: RequestResponseCycle | None = self.cycle  # uvicorn types it never None; it is until a request's headers
        if self.flow.read_paused or (phase == HEADERS and cycle is not None and not cycle.response_complete):
            # The wait is the gateway's, not the client's: reading is paused (a pipelined request waits for the
            # answer before it), or an earlier request is still being answered. Count the phase again.
            self._follow_phase()
            return
        listener = self.listener
        listener.timeouts[phase].inc()
        self._answer(408, listener.timeout_bodies[phase])

    # -- answers of our own ----------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """Invalid HTTP: uvicorn would answer in plain text; every error Corral sends is in OpenAI's shape."""
        self.listener.invalid()
        self._answer(400, self.listener.invalid_http_body)

    def _answer(self, status: int, body: bytes, extra_headers: bytes = b"") -> None:
        """Send a whole error answer, then close: at once if a response was already under way, else lingering."""
        self._answered = True
        self._cancel_deadline()
        transport = self.transport
        cycle: RequestResponseCycle | None = self.cycle  # the request being read (body phase), else the one before
        if cycle is not None and (self._phase == BODY or not cycle.response_complete):
            if cycle.response_started:  # an answer of the app's is on the wire: ours cannot follow it
                transport.close()
                return
            # The app is waiting for the body: its receive() gets http.disconnect, and what it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend((name, b": ", value, b"\r\n"))
        content.extend(
            (
                b"content-type: application/json\r\ncontent-length: ",
                str(len(body)).encode(),
                b"\r\nconnection: close\r\n",
                REQUEST_ID_HEADER.encode(),
                b": ",
                new_request_id().encode(),
                b"\r\n",
                extra_headers,
                b"\r\n",
                body,
            )
        )
        transport.write(b"".join(content))
        if transport.can_write_eof():
            transport.write_eof()  # the FIN after the answer; the client's own close then closes the transport
            self._linger = self.loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()


def listener_protocol(limits: ListenerLimits, metrics: GatewayMetrics) -> type[ListenerProtocol]:
    """The protocol class for one listener (uvicorn.Config's `http=`): uvicorn builds one instance per connection,
    and the class carries what they share."""

    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DropUvicornInvalidHttp) for existing in uvicorn_log.filters):
        uvicorn_log.addFilter(_DropUvicornInvalidHttp())

    class PublicListenerProtocol(ListenerProtocol):
        listener = Listener(limits, metrics)

    return PublicListenerProtocol
