"""RequestRecords for the archive's tests: a complete, plausible record, with any field overridden."""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from gateway_core.archive import ArchiveSettings, SqliteArchive
from gateway_core.contracts.archive import RequestRecord

_COUNTER = itertools.count()


def request_id(at: float) -> str:
    """An id in contracts/request_id.py's form whose embedded time is `at`."""
    return f"req_{int(at * 1000):012x}cafe0000{next(_COUNTER):08x}"


def chat_body(content: str = "What is the capital of France?", **extra: Any) -> bytes:
    return orjson.dumps({"model": "tiny", "messages": [{"role": "user", "content": content}], **extra})


def chat_answer(content: str = "Paris is the capital of France.") -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
        }
    )


def a_record(**overrides: Any) -> RequestRecord:
    started = overrides.pop("started_at", time.time() - 2.0)
    fields: dict[str, Any] = {
        "id": request_id(started),
        "source": "public",
        "route": "chat",
        "started_at": started,
        "first_token_at": started + 0.2,
        "ended_at": started + 1.2,
        "key_id": "k1",
        "key_name": "app-one",
        "model": "tiny",
        "provider": "box-a",
        "upstream_model": "tiny.gguf",
        "status": 200,
        "error_code": None,
        "error_message": None,
        "providers_tried": ("box-a",),
        "prompt_tokens": 9,
        "completion_tokens": 7,
        "latency_s": 1.2,
        "ttft_s": 0.2,
        "stream": False,
        "client_address": "127.0.0.1",
        "bytes_in": 120,
        "bytes_out": 300,
        "capture": "full",
        "request_body": chat_body(),
        "response_body": chat_answer(),
    }
    fields.update(overrides)
    return RequestRecord(**fields)


def archive_in(directory: Any, **settings: Any) -> SqliteArchive:
    clock = settings.pop("clock", None)
    on_status = settings.pop("on_status", None)
    extra = {"clock": clock} if clock is not None else {}
    return SqliteArchive(ArchiveSettings(directory=directory, **settings), on_status=on_status, **extra)


def stored(path: Path, sql: str = "SELECT * FROM requests ORDER BY rowid", *params: Any) -> list[sqlite3.Row]:
    """Rows read straight from a month file, as an operator's sqlite3 would."""
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()
