"""A raw HTTP/1.1 exchange over a TCP socket: send any bytes, read back one answer (or learn there was none).

No HTTP library: the point is to send what a library would refuse to (bad request lines, invalid header bytes,
broken chunked bodies, duplicate Content-Length), and to read exactly what the server wrote.
"""

from __future__ import annotations

import contextlib
import socket
from typing import BinaryIO

from tests.fuzz.checks import Answer

MAX_LINE = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class BrokenAnswer(AssertionError):
    """The server wrote something that is not an HTTP/1.1 answer, or stopped in the middle of one."""


def exchange(port: int, data: bytes, *, method: str, timeout_s: float) -> Answer | None:
    """Send `data` on a new connection and read the first final answer; None if the server closed (or reset)
    the connection without writing a byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
        # It may answer (and close) before taking everything: then the answer is waiting to be read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(data)
        with connection.makefile("rb") as stream:
            try:
                return read_answer(stream, method)
            except ConnectionResetError:
                return None
            except TimeoutError:
                raise AssertionError(f"no whole answer within {timeout_s:g} s") from None


def read_answer(stream: BinaryIO, method: str) -> Answer | None:
    while True:
        status_line = stream.readline(MAX_LINE)
        if not status_line:
            return None
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise BrokenAnswer(f"not an HTTP status line: {status_line[:200]!r}")
        status = int(parts[1])
        headers = _headers(stream)
        if status >= 200 or status == 101:
            break  # 100 Continue and other interim answers come before the real one
    return Answer(status, headers, _body(stream, method, status, headers))


def _headers(stream: BinaryIO) -> tuple[tuple[str, str], ...]:
    headers = []
    while (line := stream.readline(MAX_LINE)) not in (b"\r\n", b"\n"):
        if not line:
            raise BrokenAnswer("the connection closed in the middle of the answer's headers")
        name, separator, value = line.decode("latin-1").partition(":")
        if not separator:
            raise BrokenAnswer(f"not a header line: {line[:200]!r}")
        headers.append((name.strip().lower(), value.strip()))
    return tuple(headers)


def _body(stream: BinaryIO, method: str, status: int, headers: tuple[tuple[str, str], ...]) -> bytes:
    fields = dict(headers)
    if method == "HEAD" or status in (101, 204, 304):
        return b""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return _chunked(stream)
    if "content-length" in fields:
        length = int(fields["content-length"])
        body = stream.read(length)
        if len(body) != length:
            raise BrokenAnswer(f"the body ended after {len(body)} of its {length} bytes")
        return body
    return stream.read(MAX_BODY)  # delimited by the end of the connection


def _chunked(stream: BinaryIO) -> bytes:
    body = bytearray()
    while True:
        size_line = stream.readline(MAX_LINE)
        if not size_line:
            raise BrokenAnswer("the connection closed in the middle of a chunked body")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while stream.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        chunk = stream.read(size)
        if len(chunk) != size or stream.readline(MAX_LINE) not in (b"\r\n", b"\n"):
            raise BrokenAnswer("a chunk of the body was cut short")
        body += chunk
