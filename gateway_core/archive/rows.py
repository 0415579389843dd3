"""A request as one row of the requests table, and back: from the pipeline's record (in the writer thread), from
an exported line (import), and into the admin API's views."""

from __future__ import annotations

from typing import Any, cast

import msgspec
import orjson

from gateway_core.archive.bodies import Redactor, StoredBody, store_json_body, store_text
from gateway_core.archive.capture import StreamCapture
from gateway_core.archive.schema import BOOLEAN_COLUMNS, REQUEST_COLUMNS, ROW_COLUMNS
from gateway_core.archive.texts import answer_text, request_text
from gateway_core.contracts.archive import RequestRecord
from gateway_core.contracts.history_views import HistoryDetailView, HistoryRowView
from gateway_core.contracts.instants import month_of

COLUMN = {name: index for index, name in enumerate(REQUEST_COLUMNS)}


class PreparedRow(msgspec.Struct, gc=False):
    """One row ready for the month file: its values in REQUEST_COLUMNS order and the words to index. Not tracked
    by the garbage collector: thousands wait for each batch, and tracked they would make collections longer."""

    month: str
    values: tuple[Any, ...]
    request_words: str
    response_words: str


def prepare(record: RequestRecord, redactor: Redactor, body_cap: int) -> PreparedRow:
    """Cap, redact and assemble a record's bodies, and work out what the record leaves to the store."""
    request: StoredBody | None = None
    response_body: str | None = None
    response_format: str | None = None
    response_bytes: int | None = None
    response_truncated = False
    request_words = response_words = ""
    if record.capture == "full":
        if record.request_body is not None:
            request = store_json_body(record.request_body, redactor, body_cap)
            request_words = request_text(request.document) if request.document is not None else request.text
        if record.response_frames is not None:
            text, cut = record.response_frames.text()
            frames = record.response_frames
            response_bytes = frames.text_bytes if isinstance(frames, StreamCapture) else len(text.encode())
            response_body, response_truncated = store_text(text, body_cap, cut)
            response_format, response_words = "text", response_body
        elif record.response_body is not None:
            answer = store_json_body(record.response_body, redactor, body_cap)
            response_body, response_bytes, response_truncated = answer.text, answer.size, answer.truncated
            response_format = "json" if answer.document is not None else "text"
            response_words = answer_text(answer.document) if answer.document is not None else answer.text
    values = (
        record.id,
        record.source,
        record.route,
        record.started_at,
        record.first_token_at,
        record.ended_at,
        record.key_id,
        record.key_name,
        record.model,
        record.provider,
        record.upstream_model,
        record.status,
        record.error_code,
        record.error_message,
        orjson.dumps(record.providers_tried).decode(),
        record.prompt_tokens,
        record.completion_tokens,
        record.latency_s,
        record.ttft_s,
        tokens_per_s(record.completion_tokens, record.first_token_at, record.ended_at),
        int(record.stream),
        record.client_address,
        record.bytes_in,
        record.bytes_out,
        record.capture,
        record.gpu_seconds,
        record.energy_joules,
        None if request is None else request.text,
        None if request is None else request.size,
        int(request is not None and request.truncated),
        response_body,
        response_format,
        response_bytes,
        int(response_truncated),
    )
    return PreparedRow(month_of(record.started_at), values, request_words[:body_cap], response_words[:body_cap])


def tokens_per_s(completion_tokens: int | None, first_token_at: float | None, ended_at: float) -> float | None:
    """Completion tokens over the time from the first token to the end; None unless both are known and > 0."""
    if not completion_tokens or first_token_at is None:
        return None
    generation_s = ended_at - first_token_at
    return completion_tokens / generation_s if generation_s > 0 and completion_tokens > 0 else None


def from_exported(line: dict[str, Any], body_cap: int) -> PreparedRow:
    """A row from an exported JSON line (every column), with its words worked out again from the stored bodies."""
    values = tuple(_stored(name, line.get(name)) for name in REQUEST_COLUMNS)
    request_body, response_body = line.get("request_body"), line.get("response_body")
    request_words = response_words = ""
    if isinstance(request_body, str):
        document = _json_or_none(request_body)
        request_words = request_text(document) if document is not None else request_body
    if isinstance(response_body, str):
        document = _json_or_none(response_body) if line.get("response_format") == "json" else None
        response_words = answer_text(document) if document is not None else response_body
    started_at = values[COLUMN["started_at"]]
    return PreparedRow(month_of(started_at), values, request_words[:body_cap], response_words[:body_cap])


def _stored(name: str, value: Any) -> Any:
    if name == "providers_tried":
        return orjson.dumps(value if isinstance(value, list) else []).decode()
    if name in BOOLEAN_COLUMNS:
        return int(bool(value))
    return value


def _json_or_none(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def exported(values: tuple[Any, ...]) -> dict[str, Any]:
    """Every column of a row as an export writes it: booleans as booleans, the providers tried as a list."""
    line = dict(zip(REQUEST_COLUMNS, values, strict=True))
    line["providers_tried"] = orjson.loads(line["providers_tried"])
    for name in BOOLEAN_COLUMNS:
        line[name] = bool(line[name])
    return line


def row_view(values: tuple[Any, ...]) -> HistoryRowView:
    """A history row (ROW_COLUMNS, in order) as the admin API answers it."""
    row = dict(zip(ROW_COLUMNS, values, strict=True))
    row["providers_tried"] = orjson.loads(row["providers_tried"])
    row["stream"] = bool(row["stream"])
    return cast(HistoryRowView, row)


def detail_view(values: tuple[Any, ...]) -> HistoryDetailView:
    """One request with its bodies (every column, in order)."""
    return cast(HistoryDetailView, exported(values))
