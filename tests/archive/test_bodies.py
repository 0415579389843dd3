"""Bodies are stored redacted at the configured paths, cut at the cap on a character boundary, and flagged."""

from __future__ import annotations

import orjson
import pytest

from gateway_core.archive.bodies import REDACTED, Redactor, cut_utf8, store_json_body


@pytest.mark.parametrize(
    ("data", "cap", "kept"),
    [
        (b"abcdef", 10, b"abcdef"),
        (b"abcdef", 3, b"abc"),
        ("aé".encode(), 2, b"a"),  # é is 2 bytes: cutting after its first would split it
        ("a€".encode(), 3, b"a"),  # € is 3 bytes
        ("a😀".encode(), 4, b"a"),  # 😀 is 4 bytes
        ("a😀b".encode(), 5, "a😀".encode()),
    ],
)
def test_a_cut_never_splits_a_character(data: bytes, cap: int, kept: bytes):
    assert cut_utf8(data, cap) == kept
    kept.decode()  # always valid UTF-8


def test_a_body_over_the_cap_is_cut_flagged_and_keeps_its_original_size():
    raw = orjson.dumps({"messages": [{"role": "user", "content": "ü" * 1000}]})

    body = store_json_body(raw, Redactor(()), cap=100)

    assert body.truncated is True
    assert body.size == len(raw)
    assert len(body.text.encode()) <= 100
    assert raw.decode().startswith(body.text)


def test_a_body_under_the_cap_is_stored_as_received():
    raw = b'{"model": "tiny",  "messages": []}'

    body = store_json_body(raw, Redactor(("user",)), cap=1000)

    assert (body.text, body.truncated, body.size) == (raw.decode(), False, len(raw))


def test_redaction_replaces_top_level_wildcard_and_array_paths():
    document = {
        "user": "alice@example.com",
        "metadata": {"team": "billing", "ticket": 42},
        "messages": [{"role": "system", "content": "secret plan"}, {"role": "user", "content": "hi"}],
        "model": "tiny",
    }
    raw = orjson.dumps(document)

    body = store_json_body(raw, Redactor(("user", "metadata.*", "messages.*.content", "absent.path")), cap=10_000)

    assert orjson.loads(body.text) == {
        "user": REDACTED,
        "metadata": {"team": REDACTED, "ticket": REDACTED},
        "messages": [{"role": "system", "content": REDACTED}, {"role": "user", "content": REDACTED}],
        "model": "tiny",
    }
    assert "alice" not in body.text
    assert "secret plan" not in body.text


def test_redaction_by_array_index_touches_only_that_element():
    document = {"messages": [{"content": "keep"}, {"content": "hide"}]}

    Redactor(("messages.1.content",)).apply(document)

    assert document == {"messages": [{"content": "keep"}, {"content": REDACTED}]}


def test_a_body_that_is_not_json_is_stored_as_is():
    raw = "<html>Bad gateway: ü</html>".encode()

    body = store_json_body(raw, Redactor(("user",)), cap=1000)

    assert body.text == raw.decode()
    assert body.document is None
    assert body.truncated is False


def test_invalid_utf8_is_stored_with_replacement_characters():
    body = store_json_body(b"caf\xe9 \xff", Redactor(()), cap=1000)

    assert body.text == "caf\ufffd \ufffd"
