"""Bodies as the archive stores them: redacted where the operator said, cut at the cap, decoded to text.

All of it runs in the writer thread, never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

REDACTED = "[redacted]"
ANY = "*"


def cut_utf8(data: bytes, cap: int) -> bytes:
    """The first `cap` bytes of `data`, less the start of a character the cut would split."""
    if len(data) <= cap:
        return data
    end = cap
    for _ in range(3):  # a UTF-8 character is at most 4 bytes: at most 3 continuation bytes to step back over
        if end > 0 and data[end] & 0xC0 == 0x80:
            end -= 1
    return data[:end]


class Redactor:
    """Replaces the values at the configured JSON paths with "[redacted]".

    A path is dotted from the root: `user`, `metadata.*`, `messages.*.content`. `*` matches any one key of an
    object or any index of an array; a number matches that array index. A path that is not there changes nothing.
    """

    def __init__(self, paths: tuple[str, ...]) -> None:
        self._paths = tuple(tuple(path.split(".")) for path in paths if path.strip())

    def __bool__(self) -> bool:
        return bool(self._paths)

    def apply(self, document: Any) -> bool:
        """Redact `document` in place; whether anything was redacted."""
        changed = False
        for path in self._paths:
            changed |= _redact(document, path)
        return changed


def _redact(node: Any, path: tuple[str, ...]) -> bool:
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        keys = list(node) if head == ANY else [head] if head in node else []
    elif isinstance(node, list):
        if head == ANY:
            keys = list(range(len(node)))
        elif head.isdigit() and int(head) < len(node):
            keys = [int(head)]
        else:
            keys = []
    else:
        return False
    changed = False
    for key in keys:
        if rest:
            changed |= _redact(node[key], rest)
        else:
            node[key] = REDACTED
            changed = True
    return changed


@dataclass(frozen=True, slots=True)
class StoredBody:
    text: str  # as stored: UTF-8 decoded with replacement, capped
    size: int  # bytes as received, before redaction and the cap
    truncated: bool
    document: Any  # the parsed JSON (redacted), None when the body is not JSON


def store_json_body(raw: bytes, redactor: Redactor, cap: int) -> StoredBody:
    """A request or whole-answer body: redacted if it is JSON (a body that is not is kept as is), then capped."""
    document: Any = None
    data = raw
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        if redactor and redactor.apply(document):
            data = orjson.dumps(document)
    kept = cut_utf8(data, cap)
    return StoredBody(kept.decode("utf-8", "replace"), len(raw), len(kept) < len(data), document)


def store_text(text: str, cap: int, truncated: bool) -> tuple[str, bool]:
    """An assembled streamed answer, capped in UTF-8 bytes."""
    encoded = text.encode()
    if len(encoded) <= cap:
        return text, truncated
    return cut_utf8(encoded, cap).decode("utf-8", "replace"), True
