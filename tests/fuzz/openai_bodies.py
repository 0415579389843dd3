"""OpenAI request bodies for the three proxied routes: valid ones built from OpenAI's fields, one field refused
(`mistakes`), several mutations of any kind (`chaotic_bodies`), and whole bodies broken (`body_bytes`).

Valid bodies stay inside OpenAI's schema (`FIELDS` says what each checked field accepts), so a validator that
refuses one is too strict. A mistake gives a known field, or a nested one (a message's role or content, a content
part, a tool, stream_options), a JSON value of a kind it does not accept; a broken body is not an object,
truncated, invalid UTF-8, deeply nested, or an odd document. Sizes are bounded so an example costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from hypothesis import strategies as st

from tests.fuzz.json_values import (
    ANY_VALUE,
    DROP,
    JSON_VALUES,
    KINDS,
    RAW_VALUES,
    TEXT,
    Kind,
    Path,
    encode,
    mutate,
    values_of_kind,
)

Route = Literal["chat", "completions", "embeddings"]
ROUTES: Final[tuple[Route, ...]] = ("chat", "completions", "embeddings")
ROUTE_PATHS: Final[dict[Route, str]] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}
ROLES: Final = ("system", "developer", "user", "assistant", "tool", "function")


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


_NAME = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,15}\Z")


def wrong_values(field: Field) -> st.SearchStrategy[Any]:
    """A value the field refuses: a kind it does not accept, an integer below its least, a string not in its enum."""
    refused = sorted(KINDS - field.kinds - ({"null"} if field.nullable else set()))
    options = [values_of_kind(kind) for kind in refused]
    if field.min_value is not None:
        options.append(st.integers(min_value=-(2**63), max_value=field.min_value - 1))
    if field.values is not None:
        enum = field.values
        options.append(TEXT.filter(lambda text: text not in enum))
    return st.one_of(options)


# -- valid bodies ----------------------------------------------------------------------------------------

_WORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
TEXT_PART = st.fixed_dictionaries({"type": st.just("text"), "text": _WORDS})
_IMAGE_PART = st.fixed_dictionaries(
    {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": st.just("data:image/png;base64,iVBOR")})}
)
TEXT_CONTENT = _WORDS | st.lists(TEXT_PART, min_size=1, max_size=3)
_MESSAGES = (
    st.fixed_dictionaries({"role": st.sampled_from(("system", "developer")), "content": TEXT_CONTENT}),
    st.fixed_dictionaries(
        {"role": st.just("user"), "content": _WORDS | st.lists(TEXT_PART | _IMAGE_PART, min_size=1, max_size=3)},
        optional={"name": _NAME},
    ),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": TEXT_CONTENT}),
)
_USER_MESSAGE = st.fixed_dictionaries({"role": st.just("user"), "content": TEXT_CONTENT})
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


# -- broken bodies ---------------------------------------------------------------------------------------


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
        return encode(draw(JSON_VALUES.filter(lambda value: not isinstance(value, dict)) | RAW_VALUES), ascii_only)
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
