"""History search over the month files a range touches, newest first, a page at a time; and one request by id.

These run in worker threads (the archive calls them through asyncio.to_thread), on read-only connections.
"""

from __future__ import annotations

import base64
import re
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from gateway_core.archive.interface import HistoryQuery
from gateway_core.archive.months import list_months, months_in_range
from gateway_core.archive.readers import ReaderPool
from gateway_core.archive.rows import detail_view, row_view
from gateway_core.archive.schema import REQUEST_COLUMNS, ROW_COLUMNS
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.history_views import HistoryDetailView, HistoryPage, HistoryRowView
from gateway_core.contracts.instants import month_of

MAX_LIMIT = 1000
_CURSOR_PREFIX = "h1."
_STATUS_CLASS = re.compile(r"^([1-5])xx$")
_ROW_SELECT = f"SELECT {', '.join(ROW_COLUMNS)} FROM requests"
_ID_SELECT = f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests WHERE id = ?"
_STARTED, _ID = ROW_COLUMNS.index("started_at"), ROW_COLUMNS.index("id")


def search(pool: ReaderPool, directory: Path, query: HistoryQuery) -> HistoryPage:
    limit = max(1, min(query.limit, MAX_LIMIT))
    after = decode_cursor(query.cursor) if query.cursor else None
    clauses, parameters = _filters(query)
    text_at = len(parameters) - 1 if query.text else None  # the MATCH parameter is the filters' last
    if after is not None:
        # (started_at, id) below the last row's: the first term bounds the index range, the second breaks ties
        clauses.append("started_at <= ? AND (started_at < ? OR id < ?)")
        parameters += [after[0], after[0], after[1]]
    months = months_in_range(list_months(directory), query.since, query.until)
    if after is not None:
        months = [month for month in months if month <= month_of(after[0])]
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"{_ROW_SELECT}{where} ORDER BY started_at DESC, id DESC LIMIT ?"
    rows: list[tuple[Any, ...]] = []
    read: list[str] = []
    for month in reversed(months):
        with pool.reading(month) as connection:
            if connection is None:
                continue
            read.append(month)
            rows += _run(connection, sql, [*parameters, limit + 1 - len(rows)], text_at)
        if len(rows) > limit:
            break
    more = len(rows) > limit
    page: list[HistoryRowView] = [row_view(values) for values in rows[:limit]]
    last = rows[limit - 1] if more else None
    return {
        "rows": page,
        "next_cursor": encode_cursor(last[_STARTED], last[_ID]) if last is not None else None,
        "months": sorted(read),
    }


def get(pool: ReaderPool, directory: Path, request_id: str) -> HistoryDetailView | None:
    """One request with its bodies: first in the month its id names, then in every other month, newest first."""
    months = list_months(directory)
    named = month_of_id(request_id)
    order = ([named] if named in months else []) + [m for m in reversed(months) if m != named]
    for month in order:
        with pool.reading(month) as connection:
            if connection is None:
                continue
            values = connection.execute(_ID_SELECT, (request_id,)).fetchone()
        if values is not None:
            return detail_view(values)
    return None


def month_of_id(request_id: str) -> str | None:
    """The month a request id's embedded time falls in (contracts/request_id.py: `req_` + 12 hex ms)."""
    if not request_id.startswith("req_") or len(request_id) < 16:
        return None
    try:
        return month_of(int(request_id[4:16], 16) / 1000)
    except (ValueError, OverflowError, OSError):
        return None


def encode_cursor(started_at: float, request_id: str) -> str:
    raw = orjson.dumps([started_at, request_id])
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        if not cursor.startswith(_CURSOR_PREFIX):
            raise ValueError(cursor)
        payload = cursor[len(_CURSOR_PREFIX) :]
        started_at, request_id = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(started_at), str(request_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise GatewayError(
            400,
            f"cursor '{cursor[:40]}' is not one this archive gave: pass a page's next_cursor as it is, "
            "or leave it out for the first page",
            param="cursor",
            code="invalid_cursor",
        ) from None


def _filters(query: HistoryQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    parameters: list[Any] = []
    if query.key:
        clauses.append("(key_id = ? OR key_name = ?)")
        parameters += [query.key, query.key]
    for column, value in (("model", query.model), ("provider", query.provider)):
        if value:
            clauses.append(f"{column} = ?")
            parameters.append(value)
    if query.status:
        clause, values = status_clause(query.status)
        clauses.append(clause)
        parameters += values
    if query.since is not None:
        clauses.append("started_at >= ?")
        parameters.append(query.since)
    if query.until is not None:
        clauses.append("started_at < ?")
        parameters.append(query.until)
    if query.text:
        clauses.append("rowid IN (SELECT rowid FROM requests_text WHERE requests_text MATCH ?)")
        parameters.append(query.text)
    return clauses, parameters


def status_clause(status: str) -> tuple[str, list[int]]:
    """The SQL for a status filter: a code ("404"), a class ("4xx"), "ok" (2xx) or "error" (anything else)."""
    value = status.strip().lower()
    if value.isdigit() and len(value) == 3:
        return "status = ?", [int(value)]
    if match := _STATUS_CLASS.match(value):
        low = int(match.group(1)) * 100
        return "status >= ? AND status < ?", [low, low + 100]
    if value == "ok":
        return "status >= ? AND status < ?", [200, 300]
    if value == "error":
        return "(status < ? OR status >= ?)", [200, 300]
    raise GatewayError(
        400,
        f"status '{status}' is not a filter: use a code (200, 404), a class (2xx, 4xx, 5xx), ok or error",
        param="status",
        code="invalid_status_filter",
    )


def _run(connection: sqlite3.Connection, sql: str, parameters: list[Any], text_at: int | None) -> list[tuple[Any, ...]]:
    try:
        return connection.execute(sql, parameters).fetchall()
    except sqlite3.OperationalError:
        if text_at is None:
            raise
    # Not FTS5 syntax ("key:value", "don't", a lone quote): search for the words themselves instead.
    text = parameters[text_at]
    words = " ".join('"' + word.replace('"', '""') + '"' for word in text.split())
    try:
        return connection.execute(sql, [*parameters[:text_at], words, *parameters[text_at + 1 :]]).fetchall()
    except sqlite3.OperationalError as error:
        raise GatewayError(
            400,
            f"text search '{text}' could not be run ({error}): use words, \"a phrase\", OR, NOT, or prefix*",
            param="text",
            code="invalid_text_search",
        ) from None
