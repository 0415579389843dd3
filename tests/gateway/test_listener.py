"""The public listener: deadlines for a request's headers and body, the connection cap, and JSON errors.

Real sockets on 127.0.0.1. Most tests run uvicorn in the test's loop with the daemon's own public listener config
(`server.public_config`) over a small echo app, so they take a second each; the last ones start `corral-core`
with the CLI flags and go through the real public app.

Where a test paces a slow client (a body sent in pieces, a pause before the headers), the pause is the client's
behaviour under test, not a wait for a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from gateway_core.cli import build_parser, listener_limits, main
from gateway_core.listener import ListenerLimits, default_max_connections
from gateway_core.metrics import GatewayMetrics
from gateway_core.server import public_config
from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for, wait_for_async

# Distinct, so that a test can tell which of them closed a connection.
HEADER_S = 0.6
BODY_S = 1.5
KEEP_ALIVE_S = 1.0
LIMITS = ListenerLimits(header_timeout_s=HEADER_S, body_timeout_s=BODY_S, keep_alive_s=KEEP_ALIVE_S, max_connections=64)
SLACK_S = 0.45  # how late a deadline's answer may come on a busy 2-core machine
UVLOOP_EARLY_S = 0.01  # corral-core runs on uvloop, whose timers count on libuv's cached millisecond clock
READ_TIMEOUT_S = 10.0

PARTIAL_HEADERS = b"POST /echo HTTP/1.1\r\nhost: corral\r\ncontent-type: appl"


def post(body: bytes, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    return b"POST /echo HTTP/1.1\r\nhost: corral\r\ncontent-length: %d\r\n\r\n%s" % (length, body)


# -- the server under test --------------------------------------------------------------------------------


@dataclass
class EchoApp:
    """Answers how many body bytes it read; notes each request whose body ended in a disconnect instead."""

    disconnects: int = 0
    finished: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.disconnects += 1
                    return
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = orjson.dumps({"received": size})
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            self.finished += 1


@dataclass
class Listening:
    port: int
    metrics: GatewayMetrics
    app: EchoApp

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    @property
    def open_connections(self) -> float:
        return self.sample("corral_open_connections")


@contextlib.asynccontextmanager
async def listening(limits: ListenerLimits = LIMITS) -> AsyncIterator[Listening]:
    metrics = GatewayMetrics()
    app = EchoApp()
    config = public_config(app, metrics, limits, drain_timeout_s=1)
    config.log_config = None  # leave the test process's logging alone
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_for_async(lambda: server.started or serving.done(), "the listener to start")
        yield Listening(sock.getsockname()[1], metrics, app)
    finally:
        server.should_exit = True
        await serving
        sock.close()


# -- a raw HTTP/1.1 client --------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/json", self.headers
        payload = orjson.loads(self.body)
        assert set(payload) == {"error"}, payload
        assert set(payload["error"]) == {"message", "type", "param", "code"}, payload
        error: dict[str, Any] = payload["error"]
        return error


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened: float = field(default_factory=time.monotonic)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> Answer:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        status_line, *lines = head.decode().split("\r\n")[:-2]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(self.reader.readexactly(int(headers["content-length"])), READ_TIMEOUT_S)
        return Answer(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        """True once the server closed the connection (EOF) with nothing more sent."""
        return await asyncio.wait_for(self.reader.read(1), READ_TIMEOUT_S) == b""

    def since_open(self) -> float:
        return time.monotonic() - self.opened

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def connect(port: int) -> Client:
    opened = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return Client(reader, writer, opened)


@contextlib.asynccontextmanager
async def clients(port: int, count: int) -> AsyncIterator[list[Client]]:
    opened = [await connect(port) for _ in range(count)]
    try:
        yield opened
    finally:
        for client in opened:
            await client.close()


# -- deadlines --------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_stalled_header_connection_is_closed_with_408_at_the_header_deadline():
    async with listening() as server, clients(server.port, 1) as (client,):
        await client.send(PARTIAL_HEADERS)

        answer = await client.answer()
        elapsed = client.since_open()

        assert HEADER_S <= elapsed < HEADER_S + SLACK_S, f"answered {elapsed:.3f} s after connecting"
        assert answer.status == 408
        error = answer.error()
        assert error["code"] == "request_timeout"
        assert error["type"] == "invalid_request_error"
        assert error["param"] is None
        assert f"within {HEADER_S:g} s" in error["message"]
        assert "headers" in error["message"]
        assert answer.headers["connection"] == "close"
        assert answer.headers["x-request-id"].startswith("req_")
        assert await client.closed_by_server()
        assert server.sample("corral_request_timeouts_total", phase="headers") == 1
        assert server.sample("corral_request_timeouts_total", phase="body") == 0


@pytest.mark.asyncio
async def test_connection_that_sends_nothing_is_closed_with_408_at_the_header_deadline():
    async with listening() as server, clients(server.port, 1) as (client,):
        answer = await client.answer()

        assert HEADER_S <= client.since_open() < HEADER_S + SLACK_S
        assert answer.status == 408
        assert answer.error()["code"] == "request_timeout"
        assert await client.closed_by_server()


@pytest.mark.asyncio
async def test_first_request_header_deadline_counts_from_the_connection_start():
    async with listening() as server, clients(server.port, 1) as (client,):
        pause = HEADER_S - 0.1
        await asyncio.sleep(pause)  # the client pauses before it sends anything
        await client.send(PARTIAL_HEADERS)

        answer = await client.answer()

        assert answer.status == 408
        assert client.since_open() < pause + HEADER_S, "the deadline restarted at the first byte"


@pytest.mark.asyncio
async def test_keep_alive_request_header_deadline_counts_from_its_first_byte():
    async with listening() as server, clients(server.port, 1) as (client,):
        await client.send(post(b"{}"))
        assert (await client.answer()).status == 200
        await asyncio.sleep(KEEP_ALIVE_S / 2)  # idle between requests, within the keep-alive timeout
        started = time.monotonic()
        await client.send(PARTIAL_HEADERS)

        answer = await client.answer()
        elapsed = time.monotonic() - started

        assert answer.status == 408
        assert answer.error()["code"] == "request_timeout"
        assert HEADER_S <= elapsed < HEADER_S + SLACK_S, f"answered {elapsed:.3f} s after the request's first byte"


@pytest.mark.asyncio
async def test_short_body_is_closed_with_408_at_the_body_deadline():
    async with listening() as server, clients(server.port, 1) as (client,):
        await client.send(post(b'{"model": "x"', declared=100))
        sent = time.monotonic()

        answer = await client.answer()
        elapsed = time.monotonic() - sent

        assert BODY_S <= elapsed < BODY_S + SLACK_S, f"answered {elapsed:.3f} s after the headers"
        assert answer.status == 408
        error = answer.error()
        assert error["code"] == "request_timeout"
        assert "body" in error["message"]
        assert f"within {BODY_S:g} s" in error["message"]
        assert answer.headers["connection"] == "close"
        assert answer.headers["x-request-id"].startswith("req_")
        assert await client.closed_by_server()
        # The app waiting for the rest of the body was told the client left, and its task ended.
        await wait_for_async(lambda: server.app.finished == 1, "the app's request to end")
        assert server.app.disconnects == 1
        assert server.sample("corral_request_timeouts_total", phase="body") == 1
        assert server.sample("corral_request_timeouts_total", phase="headers") == 0


@pytest.mark.asyncio
async def test_slow_body_within_the_deadline_is_served():
    async with listening() as server, clients(server.port, 1) as (client,):
        pieces = [b"x" * 10] * 4
        await client.send(b"POST /echo HTTP/1.1\r\nhost: corral\r\ncontent-length: 40\r\n\r\n")
        started = time.monotonic()
        for piece in pieces:
            await asyncio.sleep(0.3)  # the slow client: past the header deadline in all, within the body's
            await client.send(piece)

        answer = await client.answer()

        assert HEADER_S < time.monotonic() - started < BODY_S
        assert answer.status == 200
        assert orjson.loads(answer.body) == {"received": 40}
        assert server.sample("corral_request_timeouts_total", phase="body") == 0


@pytest.mark.asyncio
async def test_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout():
    async with listening() as server, clients(server.port, 1) as (client,):
        await client.send(post(b"{}"))
        assert (await client.answer()).status == 200
        answered = time.monotonic()

        assert await client.closed_by_server(), "an idle connection gets no 408, only a close"
        idle = time.monotonic() - answered

        assert KEEP_ALIVE_S <= idle < KEEP_ALIVE_S + SLACK_S, f"closed after {idle:.3f} s idle"
        assert server.sample("corral_request_timeouts_total", phase="headers") == 0


@pytest.mark.asyncio
async def test_stray_bytes_between_requests_start_the_next_header_deadline():
    # The parser skips a bare CRLF without starting a request; it still cancels uvicorn's keep-alive timer, so
    # without the header deadline such a connection would stay open for good.
    async with listening() as server, clients(server.port, 1) as (client,):
        await client.send(post(b"{}"))
        assert (await client.answer()).status == 200
        started = time.monotonic()
        await client.send(b"\r\n")

        answer = await client.answer()

        assert answer.status == 408
        assert HEADER_S <= time.monotonic() - started < HEADER_S + SLACK_S


@pytest.mark.asyncio
async def test_pipelined_requests_are_served_and_a_stalled_one_after_them_times_out():
    async with listening() as server, clients(server.port, 1) as (client,):
        await client.send(post(b"1") + post(b"22") + PARTIAL_HEADERS)

        first, second = await client.answer(), await client.answer()
        third = await client.answer()

        assert [first.status, second.status] == [200, 200]
        assert [orjson.loads(first.body), orjson.loads(second.body)] == [{"received": 1}, {"received": 2}]
        assert third.status == 408
        assert HEADER_S <= client.since_open() < HEADER_S + SLACK_S
        assert server.sample("corral_request_timeouts_total", phase="headers") == 1


@pytest.mark.asyncio
async def test_requests_on_one_keep_alive_connection_are_served_past_the_header_deadline():
    async with listening() as server, clients(server.port, 1) as (client,):
        deadline = time.monotonic() + 2 * HEADER_S
        served = 0
        while time.monotonic() < deadline:  # bounded by time: about two header deadlines' worth of requests
            await client.send(post(b"{}"))
            assert (await client.answer()).status == 200
            served += 1

        assert served > 10
        assert server.sample("corral_request_timeouts_total", phase="headers") == 0


# -- JSON instead of uvicorn's plain text -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_invalid_http_is_answered_with_json_400_and_closed():
    async with listening() as server, clients(server.port, 1) as (client,):
        await client.send(b"NOT HTTP AT ALL\r\n\r\n")

        answer = await client.answer()

        assert answer.status == 400
        error = answer.error()
        assert error["code"] == "invalid_http"
        assert error["type"] == "invalid_request_error"
        assert answer.headers["connection"] == "close"
        assert answer.headers["x-request-id"].startswith("req_")
        assert await client.closed_by_server()


@pytest.mark.asyncio
async def test_a_burst_of_invalid_http_is_counted_and_logged_once_not_a_line_each(caplog):
    caplog.set_level(logging.WARNING)
    async with listening() as server:
        for _ in range(5):
            async with clients(server.port, 1) as (client,):
                await client.send(b"NOT HTTP AT ALL\r\n\r\n")
                assert (await client.answer()).status == 400

        assert server.sample("corral_invalid_http_requests_total") == 5
    lines = [record.getMessage() for record in caplog.records]
    assert not [line for line in lines if "Invalid HTTP request received" in line], "uvicorn's line per request"
    assert len([line for line in lines if "not valid HTTP/1.1" in line]) == 1


# -- the connection cap -----------------------------------------------------------------------------------

CAPPED = ListenerLimits(header_timeout_s=30, body_timeout_s=30, keep_alive_s=30, max_connections=3)


@pytest.mark.asyncio
async def test_connection_over_the_cap_is_refused_with_json_503():
    async with listening(CAPPED) as server, clients(server.port, 3) as held:
        await wait_for_async(lambda: server.open_connections == 3, "the held connections to be accepted")
        async with clients(server.port, 1) as (refused,):
            await refused.send(post(b"{}"))

            answer = await refused.answer()

            assert answer.status == 503
            error = answer.error()
            assert error["code"] == "too_many_connections"
            assert error["type"] == "service_unavailable"
            assert "connection cap of 3" in error["message"]
            assert "--max-connections" in error["message"]
            assert answer.headers["retry-after"] == "1"
            assert answer.headers["connection"] == "close"
            assert answer.headers["x-request-id"].startswith("req_")
            assert await refused.closed_by_server()
        assert server.sample("corral_connections_refused_total") == 1
        assert server.app.finished == 0, "a refused request never reaches the app"

        await held[0].close()
        await wait_for_async(lambda: server.open_connections == 2, "the closed connection to leave the count")
        async with clients(server.port, 1) as (admitted,):
            await admitted.send(post(b"{}"))
            assert (await admitted.answer()).status == 200


@pytest.mark.asyncio
async def test_refusal_does_not_wait_for_headers():
    # Decides where the cap answers: at accept. Were it after the headers, a refused client that sends nothing
    # would hold its descriptor until the header deadline, 30 s here.
    async with listening(CAPPED) as server, clients(server.port, 3):
        await wait_for_async(lambda: server.open_connections == 3, "the held connections to be accepted")
        async with clients(server.port, 1) as (refused,):
            answer = await refused.answer()

            assert answer.status == 503
            assert refused.since_open() < 2.0
            assert await refused.closed_by_server()
        await wait_for_async(lambda: server.open_connections == 3, "the refused connection to be closed")


@pytest.mark.asyncio
async def test_refused_clients_that_send_a_whole_request_read_the_503_not_a_reset():
    # The refusal is written before the request is read. Closing then, with the request unread, resets the
    # connection: a client still sending its body (2 MB, more than the socket buffers hold) fails with a broken
    # pipe and never reads the answer. The listener sends a FIN after the answer and reads until the client closes.
    async with listening(CAPPED) as server, clients(server.port, 3):
        await wait_for_async(lambda: server.open_connections == 3, "the held connections to be accepted")
        statuses = []
        for _ in range(10):
            async with clients(server.port, 1) as (refused,):
                await refused.send(post(b"x" * 2_000_000))
                statuses.append((await refused.answer()).status)
                assert await refused.closed_by_server()

        assert statuses == [503] * 10
        assert server.sample("corral_connections_refused_total") == 10


@pytest.mark.asyncio
async def test_open_connections_return_to_zero_after_clients_close():
    async with listening(CAPPED) as server:
        async with clients(server.port, 3) as held:
            await wait_for_async(lambda: server.open_connections == 3, "three open connections")
            await held[0].send(post(b"{}"))
            assert (await held[0].answer()).status == 200
            async with clients(server.port, 2) as refused:  # refused ones are counted while open, too
                for client in refused:
                    assert (await client.answer()).status == 503
        await wait_for_async(lambda: server.open_connections == 0, "every connection to leave the count")
        assert server.sample("corral_connections_refused_total") == 2


@pytest.mark.asyncio
async def test_open_connections_return_to_zero_after_timeouts_and_invalid_http():
    async with listening() as server:
        async with clients(server.port, 3) as (stalled_headers, stalled_body, invalid):
            await stalled_headers.send(PARTIAL_HEADERS)
            await stalled_body.send(post(b"{", declared=10))
            await invalid.send(b"\x00\x01\x02\r\n\r\n")
            assert [(await client.answer()).status for client in (invalid, stalled_headers, stalled_body)] == [
                400,
                408,
                408,
            ]
            for client in (invalid, stalled_headers, stalled_body):
                assert await client.closed_by_server()
        await wait_for_async(lambda: server.open_connections == 0, "every connection to leave the count")


@pytest.mark.asyncio
async def test_normal_request_is_served_while_stalled_connections_are_open():
    stalls = ListenerLimits(header_timeout_s=30, body_timeout_s=30, keep_alive_s=30, max_connections=1000)
    async with listening(stalls) as server, clients(server.port, 200) as stalled:
        for index, client in enumerate(stalled):
            await client.send(PARTIAL_HEADERS if index % 2 else post(b"{", declared=1000))
        await wait_for_async(lambda: server.open_connections == 200, "the stalled connections to be open")

        async with clients(server.port, 1) as (normal,):
            await normal.send(post(b'{"hello": 1}'))
            answer = await normal.answer()

            assert answer.status == 200
            assert orjson.loads(answer.body) == {"received": 12}
            assert normal.since_open() < 1.0
        await wait_for_async(lambda: server.open_connections == 200, "the normal client's connection to close")
        assert not any(client.reader.at_eof() for client in stalled), "stalled connections stay, within deadlines"


# -- the default cap --------------------------------------------------------------------------------------


def test_default_cap_is_half_the_open_files_after_a_reserve_and_at_most_10000():
    assert default_max_connections(1024) == 384
    assert default_max_connections(20_000) == 9_872
    assert default_max_connections(1_048_576) == 10_000
    assert default_max_connections(100) == 1


def test_limits_refuse_values_that_are_not_positive():
    with pytest.raises(ValueError, match="header_timeout_s must be greater than 0"):
        ListenerLimits(header_timeout_s=0)
    with pytest.raises(ValueError, match="max_connections must be greater than 0"):
        ListenerLimits(max_connections=-1)


def test_limits_without_max_connections_take_the_cap_from_the_raised_open_file_limit():
    limits = listener_limits(build_parser().parse_args([]))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard or hard == resource.RLIM_INFINITY
    assert limits == ListenerLimits(30.0, 60.0, 30.0, default_max_connections(soft))


# -- through corral-core's flags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--header-timeout", "0", "a number of seconds above 0"),
        ("--body-timeout", "-5", "a number of seconds above 0"),
        ("--keep-alive-timeout", "soon", "a number of seconds above 0"),
        ("--header-timeout", "nan", "a number of seconds above 0"),
        ("--max-connections", "0", "a whole number greater than 0"),
        ("--max-connections", "2.5", "a whole number greater than 0"),
        ("--gpu-interval", "0", "a number of seconds above 0"),
        ("--drain-timeout", "-1", "a number of seconds, 0 or more"),
        ("--drain-timeout", "inf", "a number of seconds, 0 or more"),
    ],
)
def test_invalid_daemon_flags_are_a_usage_error(flag, value, expected, capsys):
    with pytest.raises(SystemExit) as exited:
        main([flag, value])

    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {flag}: expected {expected}" in error
    assert repr(value) in error


FLAGS = ("--header-timeout", "0.5", "--body-timeout", "0.8", "--keep-alive-timeout", "1", "--max-connections", "3")
LOW_SOFT_LIMIT = 1024


def _lower_soft_open_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(LOW_SOFT_LIMIT, hard), hard))


@pytest.fixture
def flagged_daemon(tmp_path: Path) -> Iterator[CorralDaemon]:
    """corral-core started with the listener's flags, and a low soft open-file limit for it to raise."""
    daemon = CorralDaemon(tmp_path / "corral", extra_args=FLAGS, preexec=_lower_soft_open_file_limit).start()
    try:
        yield daemon
    finally:
        daemon.stop()


def _open_file_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


@pytest.mark.asyncio
async def test_corral_core_flags_set_the_deadlines_and_the_cap(flagged_daemon):
    daemon = flagged_daemon
    assert daemon.process is not None
    key = daemon.create_key("app")
    wait_for(lambda: "at most 3 open connections" in daemon.log_tail(), "the listener's limits in the log")
    assert "headers within 0.5s, bodies within 0.8s, idle keep-alive 1s" in daemon.log_tail()
    soft, hard = _open_file_limits(daemon.process.pid)
    assert soft == hard, "the soft open-file limit was raised to the hard one"
    assert soft > LOW_SOFT_LIMIT

    # Three held connections fill the cap; the fourth is refused while they wait for their header deadline.
    async with clients(daemon.port, 3) as held:
        async with clients(daemon.port, 1) as (refused,):
            answer = await refused.answer()
            assert answer.status == 503
            assert answer.error()["code"] == "too_many_connections"
            assert "connection cap of 3" in answer.error()["message"]
        for client in held:
            answer = await client.answer()
            assert answer.status == 408
            assert answer.error()["code"] == "request_timeout"
            assert 0.5 - UVLOOP_EARLY_S <= client.since_open() < 0.5 + SLACK_S

    # A real chat request whose body stops short: 408 after the body deadline, and the pipeline sees a client
    # that left (no traceback in the log).
    async with clients(daemon.port, 1) as (short,):
        await short.send(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: corral\r\nauthorization: Bearer %s\r\n"
            b'content-type: application/json\r\ncontent-length: 200\r\n\r\n{"model": "tiny"' % key.encode()
        )
        sent = time.monotonic()
        answer = await short.answer()
        assert answer.status == 408
        assert "body" in answer.error()["message"]
        assert 0.8 - UVLOOP_EARLY_S <= time.monotonic() - sent < 0.8 + SLACK_S
        assert await short.closed_by_server()

    async with clients(daemon.port, 1) as (invalid,):
        await invalid.send(b"BROKEN\r\n\r\n")
        answer = await invalid.answer()
        assert answer.status == 400
        assert answer.error()["code"] == "invalid_http"

    def counters() -> str:
        response = httpx.get(daemon.base_url + "/metrics", headers={"authorization": f"Bearer {key}"}, timeout=10)
        return response.text

    wait_for(lambda: "corral_open_connections 1.0" in counters(), "only the metrics request's connection open")
    text = counters()
    assert "corral_connections_refused_total 1.0" in text
    assert 'corral_request_timeouts_total{phase="headers"} 3.0' in text
    assert 'corral_request_timeouts_total{phase="body"} 1.0' in text
    log = daemon.log_tail(200)
    assert "Traceback" not in log, log
    assert "Exception in ASGI application" not in log, log
