"""Hypothesis strategies for whole requests to Corral's public API: method, path (with a query), headers and body.

A `FuzzRequest` holds raw headers and raw body bytes, so one case can go through the in-process apps or down a
raw TCP socket (tests/fuzz/http_strategies.py writes it out). `KEY` in a header stands for the test's valid API
key (`FuzzRequest.with_key`): the key exists only once the gateway runs. The bodies come from openai_bodies.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from hypothesis import strategies as st

from tests.fuzz.openai_bodies import ROUTE_PATHS, ROUTES, Route, body_bytes

KEY: Final = "{KEY}"  # replaced by the running gateway's key (FuzzRequest.with_key)


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str  # with its query string
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def with_key(self, key: str) -> FuzzRequest:
        return replace(self, headers=tuple((name, value.replace(KEY, key)) for name, value in self.headers))

    def header(self, name: str) -> str | None:
        return next((value for header, value in self.headers if header.lower() == name), None)


_HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)
ODD_AUTHORIZATIONS = st.one_of(
    st.sampled_from(
        (
            None,
            "",
            "Bearer",
            "Bearer ",
            f"bearer {KEY}",
            f"Bearer  {KEY}",
            f"Bearer {KEY} extra",
            f"Bearer {KEY}x",
            KEY,
            "Basic dXNlcjpwYXNz",
            "Bearer sk-corral-",
            "Bearer sk-corral--",
            "Bearer sk-corral-nosuchid-secret",
            "Bearer sk-openai-1234",
            "Bearer \xe9\xff",
        )
    ),
    _HEADER_VALUE.map(lambda text: f"Bearer {text}"),
)


@st.composite
def authorizations(draw: st.DrawFn) -> str | None:
    """Three requests in four carry the right key, so that they reach the validator; the rest a wrong one."""
    return f"Bearer {KEY}" if draw(st.integers(0, 3)) else draw(ODD_AUTHORIZATIONS)


CONTENT_TYPES = st.sampled_from(
    (
        "application/json",
        "application/json",
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/json; charset=\xff",
        ";;;",
    )
)
# Headers a generated request may carry, besides authorization and content-type. Framing headers (length, encoding,
# host) are left to the client here; the TCP fuzz garbles those on purpose.
_FRAMING = ("content-length", "transfer-encoding", "host", "connection", "expect", "upgrade")
_EXTRA_HEADER_NAMES = st.sampled_from(
    ("accept", "accept-encoding", "x-request-id", "openai-organization", "user-agent", "x-stainless-lang")
) | st.from_regex(r"\A[a-z][a-z0-9-]{0,15}\Z").filter(lambda name: name not in _FRAMING)
_EXTRA_HEADERS = st.lists(st.tuples(_EXTRA_HEADER_NAMES, _HEADER_VALUE), max_size=3)


@st.composite
def headers(draw: st.DrawFn) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    authorization = draw(authorizations())
    if authorization is not None:
        found.append(("authorization", authorization))
        if draw(st.integers(0, 9)) == 0:
            found.append(("authorization", draw(authorizations()) or ""))  # a second one, maybe different
    content_type = draw(CONTENT_TYPES)
    if content_type is not None:
        found.append(("content-type", content_type))
    found += draw(_EXTRA_HEADERS)
    return tuple(found)


NEAR_MISS_PATHS: Final = (
    "/v1/chat/completions/",
    "/v1/chat/completion",
    "/V1/chat/completions",
    "/v1//chat/completions",
    "/v1/chat/completions/extra",
    "/v1/chat",
    "/v1/",
    "/v1",
    "/",
    "/v2/chat/completions",
    "/v1/models/tiny",
    "/v1/chat/completions%00",
    "/v1/chat%2Fcompletions",
    "/v1/%C3%BC",
    "/v1/responses",
    "/health/",
    "/metrics",
    "/v1/models",
    "/events",
    "/providers",
)
OTHER_METHODS: Final = ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
_QUERY = st.sampled_from(("", "", "?stream=true", "?model=tiny", "?a=%ff", "?" + "q=1&" * 20, "?=", "?x"))


@st.composite
def public_requests(
    draw: st.DrawFn, model: str = "tiny", routes: Sequence[Route] = ROUTES, always: Mapping[str, Any] | None = None
) -> FuzzRequest:
    """Mostly POSTs to the proxied routes with generated bodies and headers; also other methods on them, and
    unknown or near-miss paths, with query strings. `always` goes into every body that is an object."""
    route = draw(st.sampled_from(routes))
    choice = draw(st.integers(0, 9))
    if choice < 8:
        method, path = "POST", ROUTE_PATHS[route]
    elif choice == 8:
        method, path = draw(st.sampled_from(OTHER_METHODS)), ROUTE_PATHS[route]
    else:
        method, path = draw(st.sampled_from(("POST", *OTHER_METHODS))), draw(st.sampled_from(NEAR_MISS_PATHS))
    return FuzzRequest(method, path + draw(_QUERY), draw(headers()), draw(body_bytes(route, model, always)))
