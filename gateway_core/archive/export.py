"""A month's rows out as JSON lines or CSV, streamed a block at a time; and JSON lines back into a fresh file.

Export reads with fetchmany in a worker thread, one block per call, so a month of any size never sits in memory.
Import writes the rows in the order they were exported, through the writer's own batch path, so the new file
has the same rows, text index and rollups.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from gateway_core.archive.batch import write_rows
from gateway_core.archive.interface import ExportFormat
from gateway_core.archive.months import list_months, month_path
from gateway_core.archive.readers import ReaderPool
from gateway_core.archive.rollups import register_functions
from gateway_core.archive.rows import PreparedRow, exported, from_exported
from gateway_core.archive.schema import REQUEST_COLUMNS, open_for_writing
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.instants import InstantError, check_month

EXPORT_BLOCK_ROWS = 500
IMPORT_BATCH_ROWS = 2000
DEFAULT_BODY_CAP = 64 * 1024
_SELECT = f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests ORDER BY rowid"


def checked_export(directory: Path, month: str, fmt: str) -> str:
    """The month to export, or the client's error (a bad month or format, a month with no file)."""
    try:
        month = check_month(month)
    except InstantError as error:
        raise GatewayError(400, str(error), param="month", code="invalid_month") from None
    if fmt not in ("jsonl", "csv"):
        raise GatewayError(400, f"format '{fmt}': use jsonl or csv", param="format", code="invalid_format")
    if not month_path(directory, month).exists():
        present = ", ".join(list_months(directory)) or "none"
        raise GatewayError(
            404, f"no archive for {month} (months archived: {present})", param="month", code="month_not_found"
        )
    return month


async def export_month(pool: ReaderPool, month: str, fmt: ExportFormat) -> AsyncIterator[bytes]:
    """Every row of `month`, bodies included: JSON lines (one object a line) or CSV (a header row first)."""
    with ExitStack() as stack:
        connection = await asyncio.to_thread(stack.enter_context, pool.reading(month))
        if connection is None:
            return
        if fmt == "csv":
            yield _csv_lines([REQUEST_COLUMNS])
        rows = await asyncio.to_thread(connection.execute, _SELECT)
        while True:
            piece = await asyncio.to_thread(_block, rows, fmt)
            if not piece:
                break
            yield piece


def _block(rows: sqlite3.Cursor, fmt: ExportFormat) -> bytes:
    block = rows.fetchmany(EXPORT_BLOCK_ROWS)
    if fmt == "csv":
        return _csv_lines(block)
    return b"".join(orjson.dumps(exported(values)) + b"\n" for values in block)


def _csv_lines(rows: Iterable[Iterable[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def import_jsonl(lines: Iterable[bytes | str], path: Path, body_cap: int = DEFAULT_BODY_CAP) -> int:
    """Write exported JSON lines into a new month file at `path` (refused if it exists); the rows written."""
    if path.exists():
        raise FileExistsError(f"{path} exists: import writes a fresh month file; choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = open_for_writing(path)
    register_functions(connection)
    written = 0
    try:
        batch: list[PreparedRow] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                exported_row = orjson.loads(line)
                if not isinstance(exported_row, dict):
                    raise TypeError("not a JSON object")
                batch.append(from_exported(exported_row, body_cap))
            except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as error:
                raise ValueError(f"line {number} is not an exported archive row ({error})") from None
            if len(batch) >= IMPORT_BATCH_ROWS:
                written += write_rows(connection, batch)
                batch = []
        if batch:
            written += write_rows(connection, batch)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BaseException:
        connection.close()
        for sidecar in ("", "-wal", "-shm"):  # the file was new: leave no half of it behind
            Path(f"{path}{sidecar}").unlink(missing_ok=True)
        raise
    connection.close()
    return written
