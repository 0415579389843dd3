"""JSON values for fuzzing: values of each JSON kind, values no JSON library writes (`Raw`), and the two
operations on bodies, `mutate` (set or drop one field, however deep) and `encode` (to bytes, Raw parts as they are)."""

from __future__ import annotations

import json
from typing import Any, Final, Literal

from hypothesis import strategies as st

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


TEXT = st.text(max_size=24)
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.floats(allow_nan=False, allow_infinity=False) | TEXT
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
        "string": TEXT,
        "array": st.lists(JSON_VALUES, max_size=3),
        "object": st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
    }[kind]


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


def nested(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


RAW_VALUES = st.one_of(
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
ANY_VALUE = JSON_VALUES | RAW_VALUES
