"""Hypothesis strategies for raw HTTP/1.1 bytes: the generated requests of strategies.py written out by hand,
and malformed HTTP (request lines, header bytes, chunked bodies, Content-Length games, line endings, garbage).

A `RawCase` says whether it `stalls`: its request never completes (a body shorter than its Content-Length,
headers that never end), so only the listener's deadlines answer it, with a 408.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from hypothesis import strategies as st

from tests.fuzz.json_values import encode
from tests.fuzz.openai_bodies import ROUTE_PATHS, ROUTES, valid_bodies
from tests.fuzz.strategies import KEY, FuzzRequest, public_requests

LLAMA_CAP: Final[Mapping[str, Any]] = {"n_predict": 8}  # llama-server's own cap on generated tokens, over max_tokens
HOST = b"host: 127.0.0.1\r\n"
AUTH = f"authorization: Bearer {KEY}\r\n".encode()
JSON_TYPE = b"content-type: application/json\r\n"


@dataclass(frozen=True)
class RawCase:
    data: bytes
    method: str = "POST"  # of the first request: a HEAD answer has no body
    stalls: bool = False
    kind: str = "request"  # what the case exercises, for the run's tally

    def with_key(self, key: str) -> RawCase:
        return replace(self, data=self.data.replace(KEY.encode(), key.encode()))


def written(request: FuzzRequest) -> bytes:
    """`request` as HTTP/1.1 bytes, with a Host header and its Content-Length."""
    lines = [f"{request.method} {request.path} HTTP/1.1\r\n".encode("latin-1"), HOST]
    lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in request.headers]
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(b"content-length: %d\r\n" % len(request.body))
    return b"".join(lines) + b"\r\n" + request.body


def _json_request(body: bytes, framing: bytes, path: bytes = b"/v1/chat/completions") -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\n" + HOST + AUTH + JSON_TYPE + framing + b"\r\n" + body


@st.composite
def valid_body_bytes(draw: st.DrawFn) -> bytes:
    route = draw(st.sampled_from(ROUTES))
    return encode({**draw(valid_bodies(route)), **LLAMA_CAP})


def _chunks(body: bytes, sizes: list[int]) -> list[bytes]:
    chunks, at = [], 0
    for size in sizes:
        if at >= len(body):
            break
        chunks.append(body[at : at + size])
        at += size
    if at < len(body):
        chunks.append(body[at:])
    return chunks


@st.composite
def chunked_requests(draw: st.DrawFn) -> RawCase:
    """Transfer-Encoding: chunked, well formed or not (bad sizes, a size that lies, extensions, no last chunk)."""
    body = draw(valid_body_bytes())
    pieces = _chunks(body, draw(st.lists(st.integers(1, 64), min_size=1, max_size=8)))
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    flaw = draw(st.integers(0, 13))  # past 6: no flaw
    if flaw == 1:
        encoded = b"zz\r\n" + encoded
    elif flaw == 2:
        encoded = b"-5\r\n" + encoded
    elif flaw == 3:
        encoded = b"%x\r\n%s\r\n" % (len(body) + 7, body)  # says more than it sends, then the last chunk
    elif flaw == 4:
        encoded = b"%x;name=value\r\n%s\r\n" % (len(body), body)
    elif flaw == 5:
        encoded = b"%x\r\n%s" % (len(body), body)  # no CRLF after the data
    elif flaw == 6:
        encoded = b"ffffffffffffffffffff\r\n" + encoded
    stalls = flaw == 3  # the lying size swallows the last chunk: the body never ends
    framing = draw(st.sampled_from((b"transfer-encoding: chunked\r\n", b"Transfer-Encoding: CHUNKED\r\n")))
    kind = f"chunked-{flaw}" if flaw <= 6 else "chunked"
    return RawCase(_json_request(encoded + b"0\r\n\r\n", framing), stalls=stalls, kind=kind)


@st.composite
def length_games(draw: st.DrawFn) -> RawCase:
    """Content-Length twice (same or not), with Transfer-Encoding, not a number, negative, past the body cap,
    or shorter than the body (the rest reads as a second request)."""
    body = draw(valid_body_bytes())
    size = len(body)
    game = draw(st.integers(0, 7))
    framings = {
        0: b"content-length: %d\r\ncontent-length: %d\r\n" % (size, size),
        1: b"content-length: %d\r\ncontent-length: %d\r\n" % (size, size + 1),
        2: b"content-length: %d\r\ntransfer-encoding: chunked\r\n" % size,
        3: b"content-length: %s\r\n" % draw(st.sampled_from((b"abc", b"1e3", b"0x10", b" ", b"1,2", b"+5"))),
        4: b"content-length: -%d\r\n" % size,
        5: b"content-length: %d\r\n" % (size + 2**40),  # past any body cap; said before a byte of it is sent
        6: b"content-length: %d\r\n" % max(0, size - draw(st.integers(1, max(1, size)))),
        7: b"content-length: %d, %d\r\n" % (size, size),
    }
    return RawCase(_json_request(body, framings[game]), kind=f"length-{game}")


REQUEST_LINES: Final = (
    b"GET\r\n",
    b"POST  /v1/chat/completions HTTP/1.1\r\n",
    b"post /v1/chat/completions HTTP/1.1\r\n",
    b"FOO /v1/chat/completions HTTP/1.1\r\n",
    b"POST /v1/chat/completions HTTP/1.0\r\n",
    b"POST /v1/chat/completions HTTP/2.0\r\n",
    b"POST /v1/chat/completions HTTP/9.9\r\n",
    b"POST /v1/chat/completions\r\n",
    b"POST http://127.0.0.1/v1/chat/completions HTTP/1.1\r\n",
    b"POST * HTTP/1.1\r\n",
    b"OPTIONS * HTTP/1.1\r\n",
    b"POST v1/chat/completions HTTP/1.1\r\n",
    b"POST /v1/chat/\xff\xfe HTTP/1.1\r\n",
    b"POST /v1/chat/completions\x00 HTTP/1.1\r\n",
    b"POST /v1/chat/completions HTTP/1.1 extra\r\n",
    b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n",
    b"POST /v1/chat/completions?" + b"a" * 9000 + b" HTTP/1.1\r\n",
    b"\r\nPOST /v1/chat/completions HTTP/1.1\r\n",
)


@st.composite
def bad_request_lines(draw: st.DrawFn) -> RawCase:
    body = draw(valid_body_bytes())
    line = draw(st.sampled_from(REQUEST_LINES))
    rest = HOST + AUTH + JSON_TYPE + b"content-length: %d\r\n\r\n" % len(body) + body
    return RawCase(line + rest, kind="request-line")


HEADER_LINES: Final = (
    b"x-fuzz: a\x00b\r\n",
    b"x-fuzz: \x7f\x01\r\n",
    b"x-fuzz: \xff\xfe\r\n",
    b"x fuzz: 1\r\n",
    b"x-fuzz\r\n",
    b": empty-name\r\n",
    b"x-fuzz : spaced\r\n",
    b"x-fuzz: folded\r\n  continued\r\n",
    b"\tleading-tab: 1\r\n",
    b"x-fuzz: " + b"v" * 20_000 + b"\r\n",
    b"".join(b"x-fuzz-%d: %d\r\n" % (n, n) for n in range(300)),
    b"authorization: Bearer \xff\r\n",
    b"content-type: application/json\x00\r\n",
    b"upgrade: websocket\r\nconnection: upgrade\r\n",
    b"upgrade: h2c\r\nconnection: upgrade, http2-settings\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n",
    b"expect: 100-continue\r\n",
    b"expect: something-else\r\n",
    b"connection: close\r\n",
    b"host: second.example\r\n",
)


@st.composite
def bad_header_lines(draw: st.DrawFn) -> RawCase:
    body = draw(valid_body_bytes())
    extra = b"".join(draw(st.lists(st.sampled_from(HEADER_LINES), min_size=1, max_size=3)))
    data = _json_request(body, extra + b"content-length: %d\r\n" % len(body))
    if draw(st.booleans()):
        data = data.replace(HOST, b"")  # and no Host at all
    return RawCase(data, kind="header")


@st.composite
def odd_line_endings(draw: st.DrawFn) -> RawCase:
    body = draw(valid_body_bytes())
    request = _json_request(body, b"content-length: %d\r\n" % len(body))
    head, _, _ = request.partition(b"\r\n\r\n")
    ending = draw(st.sampled_from((b"\n", b"\r", b"\n\r", b"\r\r\n")))
    return RawCase(head.replace(b"\r\n", ending) + ending * 2 + body, kind="line-endings")


GARBAGE: Final = (
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)),  # the start of a TLS ClientHello
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2's connection preface
    b"\r\n\r\n\r\n",
    b"\x00" * 64,
    b"GET / HTTP/1.1\r\n\r\n" * 3,  # pipelined
    b"hello\r\n\r\n",
)


@st.composite
def garbage(draw: st.DrawFn) -> RawCase:
    data = draw(st.sampled_from(GARBAGE) | st.binary(min_size=1, max_size=200).map(lambda raw: raw + b"\r\n\r\n"))
    return RawCase(data, method="GET", kind="garbage")


@st.composite
def stalled_requests(draw: st.DrawFn) -> RawCase:
    """A request that never completes: headers that never end, or a body shorter than its Content-Length."""
    body = draw(valid_body_bytes())
    if draw(st.booleans()):
        head = _json_request(b"", b"")[:-2]  # no blank line: the headers never end
        return RawCase(head[: draw(st.integers(1, len(head)))], stalls=True, kind="stall-headers")
    missing = draw(st.integers(1, 64))
    return RawCase(
        _json_request(body, b"content-length: %d\r\n" % (len(body) + missing)), stalls=True, kind="stall-body"
    )


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about one time in `n`. Not integers(0, n - 1) == k, nor random() < 1 / n: hypothesis draws a range's
    ends, small numbers and 0.0 far more often than that; a multiplicative hash spreads what it draws."""
    return st.integers(0, 2**32 - 1).map(lambda drawn: ((drawn + 12345) * 2654435761) % 2**32 < 2**32 // n)


@st.composite
def raw_requests(draw: st.DrawFn, stall_one_in: int = 200) -> RawCase:
    """Mostly well-formed HTTP carrying the generated requests of strategies.py; then malformed HTTP of every
    kind above. One case in `stall_one_in` stalls, since each costs the listener's deadline (0: never)."""
    if stall_one_in and draw(one_in(stall_one_in)):
        return draw(stalled_requests())
    choice = draw(st.integers(0, 13))
    if choice < 8:
        request = draw(public_requests(always=LLAMA_CAP))
        return RawCase(written(request), method=request.method, kind="generated")
    strategies = (chunked_requests(), length_games(), bad_request_lines(), bad_header_lines(), odd_line_endings())
    if choice < 13:
        return draw(strategies[choice - 8])
    return draw(garbage())


def valid_chat(key: str) -> bytes:
    body = encode({"model": "tiny", "messages": [{"role": "user", "content": "still there?"}], "max_tokens": 4})
    request = FuzzRequest("POST", ROUTE_PATHS["chat"], (("authorization", f"Bearer {key}"),), body)
    return written(request)
