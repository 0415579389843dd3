"""Hypothesis strategies for requests to Corral: valid OpenAI bodies, then mistyped, garbled and misaddressed ones.

A generated request is a `FuzzRequest` (method, path with its query, raw headers, raw body bytes), so one case can
go through the in-process apps or down a raw TCP socket. `KEY` in a header stands for the test's valid API key
(`FuzzRequest.with_key`): the key exists only once the gateway runs.

Valid bodies are built from OpenAI's fields (`FIELDS` says what each accepts) and stay inside OpenAI's schema, so a
validator that refuses one is too strict. Mutations start from one: a known field (or a nested one: a message's role
or content, a content part, a tool, stream_options) given a JSON value of a kind it does not accept, fields dropped,
unknown fields added, and whole bodies broken (not an object, truncated, invalid UTF-8, deeply nested, huge numbers,
long strings). Sizes are bounded so an example costs milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from hypothesis import strategies as st

Route = Literal["chat", "completions", "embeddings"]
ROUTES: Final[tuple[Route, ...]] = ("chat", "completions", "embeddings")
ROUTE_PATHS: Final[dict[Route, str]] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}
KEY: Final = "{KEY}"  # replaced by the running gateway's key (FuzzRequest.with_key)
ROLES: Final = ("system", "developer", "user", "assistant", "tool", "function")
LONG_STRING_CHARS: Final = 64 * 1024

Kind = Literal["null", "boolean", "integer", "number", "string", "array", "object"]
KINDS: Final[frozenset[Kind]] = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})
Path = tuple[str | int, ...]


class Raw(str):
    """JSON text put into a body as it is: what json.dumps cannot write (1e400, nesting deeper than its limit)."""


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Final = _Drop()  # a mutation's value that removes the field


@dataclass(frozen=True)
class Field:
    """What one field accepts: JSON kinds (null too when `nullable`), a least integer, an enum of strings."""

    kinds: frozenset[Kind]
    nullable: bool = True
    min_value: int | None = None
    values: tuple[str, ...] | None = None


def _field(*kinds: Kind, nullable: bool = True, min_value: int | None = None, values: Sequence[str] = ()) -> Field:
    integers: frozenset[Kind] = frozenset({"integer"}) if "number" in kinds else frozenset()  # numbers include them
    return Field(frozenset(kinds) | integers, nullable, min_value, tuple(values) or None)


_REQUIRED_STRING = _field("string", nullable=False)
_COUNT = _field("integer", min_value=1)
_NUMBER = _field("number")
# The OpenAI fields Corral checks, per route; a field not named here passes through unchecked.
FIELDS: Final[dict[Route, dict[str, Field]]] = {
    "chat": {
        "model": _REQUIRED_STRING,
        "messages": _field("array", nullable=False),
        "stream": _field("boolean"),
        "stream_options": _field("object"),
        "max_tokens": _COUNT,
        "max_completion_tokens": _COUNT,
        "temperature": _NUMBER,
        "top_p": _NUMBER,
        "n": _field("integer"),
        "stop": _field("string", "array"),
        "tools": _field("array"),
        "tool_choice": _field("string", "object"),
        "response_format": _field("object"),
        "logprobs": _field("boolean"),
        "seed": _field("integer"),
    },
    "completions": {
        "model": _REQUIRED_STRING,
        "prompt": _field("string", "array", nullable=False),
        "stream": _field("boolean"),
        "stream_options": _field("object"),
        "max_tokens": _COUNT,
        "temperature": _NUMBER,
        "top_p": _NUMBER,
        "n": _field("integer"),
        "stop": _field("string", "array"),
        "seed": _field("integer"),
    },
    "embeddings": {
        "model": _REQUIRED_STRING,
        "input": _field("string", "array", nullable=False),
    },
}
REQUIRED: Final[dict[Route, tuple[str, ...]]] = {
    "chat": ("model", "messages"),
    "completions": ("model", "prompt"),
    "embeddings": ("model", "input"),
}
# Every OpenAI request field of the three routes: a generated "unknown" field never takes one of these names.
OPENAI_FIELD_NAMES: Final = frozenset(
    {
        *(name for fields in FIELDS.values() for name in fields),
        *("audio", "best_of", "dimensions", "echo", "encoding_format", "frequency_penalty", "function_call"),
        *("functions", "logit_bias", "metadata", "modalities", "parallel_tool_calls", "prediction"),
        *("presence_penalty", "reasoning_effort", "service_tier", "store", "suffix", "top_logprobs", "user"),
        *("web_search_options", "n_predict", "ignore_eos"),  # and llama-server's own
    }
)


def param_of(path: Path) -> str:
    """A field's path as Corral's `param` names it: messages[2].content."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def kind_of(value: object) -> Kind:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# -- JSON values ---------------------------------------------------------------------------------------

_TEXT = st.text(max_size=24)
_NAME = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,15}\Z")
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.floats(allow_nan=False, allow_infinity=False) | _TEXT
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def values_of_kind(kind: Kind) -> st.SearchStrategy[Any]:
    if kind == "number":  # never integral, so it is no integer in any reading of JSON
        return st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "integer": st.integers(-(2**63), 2**63 - 1),
        "string": _TEXT,
        "array": st.lists(JSON_VALUES, max_size=3),
        "object": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
    }[kind]


def wrong_values(field: Field) -> st.SearchStrategy[Any]:
    """A value the field refuses: a kind it does not accept, an integer below its least, a string not in its enum."""
    refused = sorted(KINDS - field.kinds - ({"null"} if field.nullable else set()))
    options = [values_of_kind(kind) for kind in refused]
    if field.min_value is not None:
        options.append(st.integers(min_value=-(2**63), max_value=field.min_value - 1))
    if field.values is not None:
        enum = field.values
        options.append(_TEXT.filter(lambda text: text not in enum))
    return st.one_of(options)


# -- valid bodies ----------------------------------------------------------------------------------------

_WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
_TEXT_PART = st.fixed_dictionaries({"type": st.just("text"), "text": _WORDS})
_IMAGE_PART = st.fixed_dictionaries(
    {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": st.just("data:image/png;base64,iVBOR")})}
)
_TEXT_CONTENT = _WORDS | st.lists(_TEXT_PART, min_size=1, max_size=3)
_MESSAGES = (
    st.fixed_dictionaries({"role": st.sampled_from(("system", "developer")), "content": _TEXT_CONTENT}),
    st.fixed_dictionaries(
        {"role": st.just("user"), "content": _WORDS | st.lists(_TEXT_PART | _IMAGE_PART, min_size=1, max_size=3)},
        optional={"name": _NAME},
    ),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": _TEXT_CONTENT}),
)
_USER_MESSAGE = st.fixed_dictionaries({"role": st.just("user"), "content": _TEXT_CONTENT})
_TOOL = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": _NAME},
            optional={
                "description": _WORDS,
                "parameters": st.just({"type": "object", "properties": {"city": {"type": "string"}}}),
            },
        ),
    }
)
_RESPONSE_FORMAT = st.sampled_from(
    (
        {"type": "text"},
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
    )
)
_STOP = st.text(min_size=1, max_size=8) | st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4)
_TOKENS = st.lists(st.integers(1, 255), min_size=1, max_size=8)  # ids the tiny test model knows


def _sampling(max_tokens: st.SearchStrategy[int]) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "max_tokens": max_tokens,
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "stop": _STOP,
        "seed": st.integers(-(2**31), 2**31 - 1),
    }


@st.composite
def _streaming(draw: st.DrawFn) -> dict[str, Any]:
    """stream, and stream_options only with it (OpenAI refuses stream_options without stream)."""
    stream = draw(st.sampled_from((None, False, True)))
    if stream is None:
        return {}
    if stream and draw(st.booleans()):
        return {"stream": True, "stream_options": {"include_usage": draw(st.booleans())}}
    return {"stream": stream}


@st.composite
def valid_chat_bodies(draw: st.DrawFn, model: str = "tiny", max_tokens: int = 8) -> dict[str, Any]:
    messages = draw(st.lists(st.one_of(_MESSAGES), max_size=3))
    body: dict[str, Any] = {"model": model, "messages": [*messages, draw(_USER_MESSAGE)]}
    body |= draw(
        st.fixed_dictionaries(
            {},
            optional={
                **_sampling(st.integers(1, max_tokens)),
                "n": st.just(1),
                "response_format": _RESPONSE_FORMAT,
                "logprobs": st.booleans(),
                "presence_penalty": st.floats(-2, 2),
                "user": _WORDS,
            },
        )
    )
    if "max_tokens" in body and draw(st.booleans()):
        body["max_completion_tokens"] = body.pop("max_tokens")
    if draw(st.booleans()):
        tools: list[dict[str, Any]] = draw(st.lists(_TOOL, min_size=1, max_size=2))
        body["tools"] = tools
        named = {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
        choices: tuple[object, ...] = ("none", "auto", "required", named)
        if draw(st.booleans()):
            body["tool_choice"] = draw(st.sampled_from(choices))
    return body | draw(_streaming())


@st.composite
def valid_completions_bodies(draw: st.DrawFn, model: str = "tiny", max_tokens: int = 8) -> dict[str, Any]:
    prompt = draw(
        _WORDS | st.lists(_WORDS, min_size=1, max_size=3) | _TOKENS | st.lists(_TOKENS, min_size=1, max_size=2)
    )
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    body |= draw(st.fixed_dictionaries({}, optional=_sampling(st.integers(1, max_tokens))))
    return body | draw(_streaming())


@st.composite
def valid_embeddings_bodies(draw: st.DrawFn, model: str = "tiny") -> dict[str, Any]:
    inputs = draw(
        _WORDS | st.lists(_WORDS, min_size=1, max_size=3) | _TOKENS | st.lists(_TOKENS, min_size=1, max_size=2)
    )
    body: dict[str, Any] = {"model": model, "input": inputs}
    return body | draw(
        st.fixed_dictionaries(
            {}, optional={"encoding_format": st.sampled_from(("float", "base64")), "dimensions": st.integers(1, 16)}
        )
    )


def valid_bodies(route: Route, model: str = "tiny") -> st.SearchStrategy[dict[str, Any]]:
    if route == "chat":
        return valid_chat_bodies(model)
    if route == "completions":
        return valid_completions_bodies(model)
    return valid_embeddings_bodies(model)


def unknown_fields(values: st.SearchStrategy[Any] = JSON_VALUES) -> st.SearchStrategy[dict[str, Any]]:
    """Fields OpenAI does not define, with any JSON value: Corral passes them to the provider unchanged."""
    names = st.from_regex(r"\A[a-z][a-z0-9_]{0,15}\Z").filter(lambda name: name not in OPENAI_FIELD_NAMES)
    return st.dictionaries(names, values, min_size=1, max_size=3)


# -- mistakes: one field refused ---------------------------------------------------------------------------

_MESSAGE = _field("object", nullable=False)
_ROLE = _field("string", nullable=False, values=ROLES)
_CONTENT = _field("string", "array")
_PART = _field("object", nullable=False)
_TOKEN_ITEM = _field("string", "integer", "array", nullable=False)


def targets(route: Route, body: Mapping[str, Any]) -> list[tuple[Path, Field]]:
    """Every field of `body` Corral checks, nested ones included, with what it accepts."""
    found: list[tuple[Path, Field]] = [((name,), field) for name, field in FIELDS[route].items()]
    for index, message in enumerate(_items(body.get("messages"))):
        found += [(("messages", index), _MESSAGE), (("messages", index, "role"), _ROLE)]
        found.append((("messages", index, "content"), _CONTENT))
        content = message.get("content") if isinstance(message, dict) else None
        for position, part in enumerate(_items(content)):
            found.append((("messages", index, "content", position), _PART))
            if isinstance(part, dict) and part.get("type") == "text":
                found.append((("messages", index, "content", position, "text"), _REQUIRED_STRING))
    for index, _ in enumerate(_items(body.get("tools"))):
        found.append((("tools", index), _MESSAGE))
        found.append((("tools", index, "function"), _field("object", nullable=False)))
        found.append((("tools", index, "function", "name"), _REQUIRED_STRING))
    if isinstance(body.get("stream_options"), dict):
        found.append((("stream_options", "include_usage"), _field("boolean")))
    for list_field in ("prompt", "input"):
        for index, _ in enumerate(_items(body.get(list_field))):
            found.append(((list_field, index), _TOKEN_ITEM))
    return found


def _items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class Mistake:
    """A valid body with one field refused: given a wrong value, or dropped when it is required."""

    route: Route
    body: dict[str, Any]
    path: Path
    value: Any

    @property
    def param(self) -> str:
        return param_of(self.path)


@st.composite
def mistakes(draw: st.DrawFn, route: Route, model: str = "tiny") -> Mistake:
    body = draw(valid_bodies(route, model))
    if draw(st.integers(0, 5)) == 0:  # a required field dropped
        path: Path = (draw(st.sampled_from(REQUIRED[route])),)
        return Mistake(route, mutate(body, path, DROP), path, DROP)
    path, field = draw(st.sampled_from(targets(route, body)))
    value = draw(wrong_values(field))
    return Mistake(route, mutate(body, path, value), path, value)


def mutate(body: Any, path: Path, value: Any) -> Any:
    """A copy of `body` with the field at `path` set to `value` (or removed, for DROP); unchanged if the path
    does not lead anywhere any more (an earlier mutation replaced a container)."""
    if not path:
        return body if value is DROP else value
    head, rest = path[0], path[1:]
    if isinstance(body, dict) and isinstance(head, str):
        if not rest and value is DROP:
            return {name: item for name, item in body.items() if name != head}
        if rest and head not in body:
            return body
        return {**body, head: mutate(body.get(head), rest, value)}
    if isinstance(body, list) and isinstance(head, int) and head < len(body):
        if not rest and value is DROP:
            return body[:head] + body[head + 1 :]
        return [*body[:head], mutate(body[head], rest, value), *body[head + 1 :]]
    return body


# -- encoding --------------------------------------------------------------------------------------------


def encode(value: Any, ascii_only: bool = True) -> bytes:
    """JSON bytes for `value`, with Raw parts written as they are."""
    return _json_text(value, ascii_only).encode("utf-8")


def _json_text(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        members = (
            f"{json.dumps(name, ensure_ascii=ascii_only)}:{_json_text(item, ascii_only)}"
            for name, item in value.items()
        )
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_text(item, ascii_only) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


# -- broken bodies ---------------------------------------------------------------------------------------


def nested(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


_RAW_VALUES = st.one_of(
    st.sampled_from(
        (
            Raw("1e400"),
            Raw("-1e400"),
            Raw("123456789012345678901234567890"),
            Raw("1" * 400),
            Raw("NaN"),
            Raw("Infinity"),
            Raw("-0"),
            Raw('"\\ud800"'),  # a lone surrogate, escaped
            Raw('"\\u0000"'),
        )
    ),
    st.integers(1, 1100).map(nested),  # past orjson's 254-deep limit on writing, and its 1024 on reading
    st.integers(1, 400).map(lambda depth: Raw('{"a":' * depth + "1" + "}" * depth)),
    st.integers(1, LONG_STRING_CHARS).map(lambda size: "x" * size),
    st.text(st.characters(codec="utf-8"), max_size=24),  # any unicode, right-to-left marks and emoji included
)
ANY_VALUE = JSON_VALUES | _RAW_VALUES


@st.composite
def chaotic_bodies(draw: st.DrawFn, route: Route, model: str = "tiny") -> Any:
    """A valid body after one to three mutations of any kind: wrong, odd or valid values, drops and additions."""
    body: Any = draw(valid_bodies(route, model))
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(body, dict):
            break
        choice = draw(st.integers(0, 5))
        if choice == 0:
            body = {**body, **draw(unknown_fields(ANY_VALUE))}
        elif choice == 1 and body:
            body = mutate(body, (draw(st.sampled_from(sorted(body))),), DROP)
        else:
            path, field = draw(st.sampled_from(targets(route, body)))
            value = draw(wrong_values(field) if choice < 4 else ANY_VALUE)
            body = mutate(body, path, value)
    return body


def _cut(data: bytes, draw: st.DrawFn) -> bytes:
    return data[: draw(st.integers(0, max(0, len(data) - 1)))]


def _spliced(data: bytes, insert: bytes, draw: st.DrawFn) -> bytes:
    at = draw(st.integers(0, len(data)))
    return data[:at] + insert + data[at:]


ODD_DOCUMENTS: Final = (
    b"",
    b" \r\n\t",
    b"null",
    b"{}",
    b"[]",
    b'"a string"',
    b"\xef\xbb\xbf{}",  # a byte-order mark
    b'{"model": "tiny", "model": 5}',
    b"{'model': 'tiny'}",  # Python, not JSON
    b'{"model": "tiny",}',
    b"model=tiny&prompt=hi",
    b"\x00" * 16,
)


@st.composite
def body_bytes(draw: st.DrawFn, route: Route, model: str = "tiny", always: Mapping[str, Any] | None = None) -> bytes:
    """Raw request bodies: valid, mutated, not an object, truncated, invalid UTF-8, deeply nested, odd documents.
    `always` is added to every body that is an object (the TCP fuzz caps llama-server's work with it)."""
    ascii_only = draw(st.booleans())
    added = dict(always or {})

    def whole(body: Any) -> bytes:
        return encode({**body, **added} if isinstance(body, dict) else body, ascii_only)

    choice = draw(st.integers(0, 9))
    if choice == 0:
        return whole(draw(valid_bodies(route, model)))
    if choice == 1:
        return encode(draw(JSON_VALUES.filter(lambda value: not isinstance(value, dict)) | _RAW_VALUES), ascii_only)
    if choice == 2:
        return _cut(whole(draw(valid_bodies(route, model))), draw)
    if choice == 3:
        invalid = draw(st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xf4\x90\x80\x80")))
        return _spliced(encode({**draw(valid_bodies(route, model)), **added}, ascii_only=False), invalid, draw)
    if choice == 4:
        depth = draw(st.integers(200, 5000))
        return draw(st.sampled_from((b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth)))
    if choice == 5:
        return draw(st.sampled_from(ODD_DOCUMENTS))
    return whole(draw(chaotic_bodies(route, model)))


# -- whole requests ----------------------------------------------------------------------------------------


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
