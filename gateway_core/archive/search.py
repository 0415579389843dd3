"""History search over the month files a range touches, newest first, a page at a time; and one request by id.

A row's rowid is its start time (batch.py), so each statement walks one index (or the table, or the text index)
backwards and stops at the page's end. These run in worker threads (the archive calls them through
asyncio.to_thread), on read-only connections.
"""

from __future__ import annotations

import base64
import re
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from gateway_core.archive.batch import TIEBREAKS, first_key_at
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
_COLUMNS = ", ".join(f"r.{name}" for name in ROW_COLUMNS)
_ID_SELECT = f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests WHERE id = ?"

Statement = tuple[str, list[Any], int | None]  # SQL, its parameters less the LIMIT, where the text query is


def search(pool: ReaderPool, directory: Path, query: HistoryQuery) -> HistoryPage:
    limit = max(1, min(query.limit, MAX_LIMIT))
    before = decode_cursor(query.cursor) if query.cursor else None
    codes = status_codes(query.status) if query.status else None
    months = months_in_range(list_months(directory), query.since, query.until)
    if before is not None:
        months = [month for month in months if month <= month_of(before / TIEBREAKS / 1_000_000)]
    rows: list[tuple[Any, ...]] = []  # (rowid, *ROW_COLUMNS), newest first
    read: list[str] = []
    for month in reversed(months):
        wanted = limit + 1 - len(rows)  # one more than the page: whether there is a next one
        with pool.reading(month) as connection:
            if connection is None:
                continue
            read.append(month)
            found: dict[int, tuple[Any, ...]] = {}
            present = _present(connection, codes) if codes is not None else None
            for sql, parameters, text_at in _statements(query, before, present):
                for row in _run(connection, sql, [*parameters, wanted], text_at):
                    found[row[0]] = row
        rows += sorted(found.values(), key=lambda row: row[0], reverse=True)[:wanted]  # the statements' rows merged
        if len(rows) > limit:
            break
    page: list[HistoryRowView] = [row_view(values[1:]) for values in rows[:limit]]
    return {
        "rows": page,
        "next_cursor": encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None,
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


def encode_cursor(rowid: int) -> str:
    """The next page starts below this row: its rowid, which is its start time and a tiebreak (batch.py)."""
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(orjson.dumps([rowid])).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        if not cursor.startswith(_CURSOR_PREFIX):
            raise ValueError(cursor)
        payload = cursor[len(_CURSOR_PREFIX) :]
        (rowid,) = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if not isinstance(rowid, int):
            raise TypeError(rowid)
        return rowid
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise GatewayError(
            400,
            f"cursor '{cursor[:40]}' is not one this archive gave: pass a page's next_cursor as it is, "
            "or leave it out for the first page",
            param="cursor",
            code="invalid_cursor",
        ) from None


def _present(connection: sqlite3.Connection, codes: list[int]) -> list[int]:
    """The status codes of `codes` that some row of this month has (one index probe each)."""
    probe = "SELECT 1 FROM requests WHERE status = ? LIMIT 1"
    return [code for code in codes if connection.execute(probe, (code,)).fetchone() is not None]


def _statements(query: HistoryQuery, before: int | None, codes: list[int] | None) -> list[Statement]:
    """The SQL for one month: one statement per key column (a key is matched by id and by name) and per status
    code asked for, each walking its own index newest first. An OR, or a range of statuses, would sort every
    match before the first row came back; these stop at the page, and their rows are merged by time."""
    clauses: list[str] = []
    parameters: list[Any] = []
    if query.text:
        clauses.append("t.requests_text MATCH ?")
        parameters.append(query.text)
    for column, value in (("model", query.model), ("provider", query.provider)):
        if value:
            clauses.append(f"r.{column} = ?")
            parameters.append(value)
    # Bounds on the rowid (the start time) follow the order being walked; the started_at comparisons make them
    # exact below a microsecond.
    order = "t.rowid" if query.text else "r.rowid"
    if query.since is not None:
        clauses.append(f"{order} >= ? AND r.started_at >= ?")
        parameters += [first_key_at(query.since), query.since]
    if query.until is not None:
        clauses.append(f"{order} < ? AND r.started_at < ?")
        parameters += [first_key_at(query.until) + TIEBREAKS, query.until]
    if before is not None:
        clauses.append(f"{order} < ?")
        parameters.append(before)
    # With a text query the text index leads (CROSS JOIN keeps that order): it hands out matches newest first.
    source = "requests_text AS t CROSS JOIN requests AS r ON r.rowid = t.rowid" if query.text else "requests AS r"
    text_at = 0 if query.text else None
    variants: list[tuple[list[str], list[Any]]] = [([], [])]
    if query.key:
        variants = [(["r.key_id = ?"], [query.key]), (["r.key_name = ?"], [query.key])]
    if codes is not None:
        variants = [([*where, "r.status = ?"], [*values, code]) for where, values in variants for code in codes]
    statements: list[Statement] = []
    for where, values in variants:
        sql = f"SELECT r.rowid, {_COLUMNS} FROM {source}"
        if clauses or where:
            sql += f" WHERE {' AND '.join([*clauses, *where])}"
        statements.append((f"{sql} ORDER BY {order} DESC LIMIT ?", [*parameters, *values], text_at))
    return statements


def status_codes(status: str) -> list[int]:
    """The codes a status filter means: a code ("404"), a class ("4xx"), "ok" (2xx) or "error" (anything else)."""
    value = status.strip().lower()
    if value.isdigit() and len(value) == 3:
        return [int(value)]
    if match := _STATUS_CLASS.match(value):
        low = int(match.group(1)) * 100
        return list(range(low, low + 100))
    if value == "ok":
        return list(range(200, 300))
    if value == "error":
        return [*range(100, 200), *range(300, 600)]
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
