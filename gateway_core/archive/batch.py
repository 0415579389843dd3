"""One batch of rows into one month file, in one transaction: the rows, their text index entries, the rollups.

A row's rowid is its start time: microseconds since the epoch x 1000, plus a tiebreak (`time_key`). So the
requests table is stored in start order, "newest first" is a walk backwards along it, every index (key, model,
provider, status) is ordered by time within each value for free (an index entry ends with the rowid), and the
text index, keyed on the same rowid, hands matches out newest first too.

The writer calls `write_rows` for every batch and import for every block of lines, so an imported file is
indexed and rolled up exactly as a written one.
"""

from __future__ import annotations

import itertools
import logging
import math
import sqlite3
import time

from gateway_core.archive.rollups import RollupBatch
from gateway_core.archive.rows import COLUMN, PreparedRow
from gateway_core.archive.schema import REQUEST_COLUMNS

log = logging.getLogger("corral.archive")

TIEBREAKS = 1000  # rows started in the same microsecond
# The writer's Python work holds the GIL: without a pause the event loop can wait a whole switch interval (5 ms)
# for it. A short sleep every few hundred microseconds of work hands the GIL back to the loop.
YIELD_EVERY_ROWS = 128
YIELD_S = 0.00005
_STARTED = COLUMN["started_at"]
_INSERT_ROW = (
    f"INSERT OR IGNORE INTO requests (rowid, {', '.join(REQUEST_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(REQUEST_COLUMNS) + 1))})"
)
_INSERT_TEXT = "INSERT INTO requests_text (rowid, request, response) VALUES (?, ?, ?)"
_ID_LOOKUP_CHUNK = 500
_tiebreaks = itertools.count()


def time_key(started_at: float, tiebreak: int = 0) -> int:
    """The rowid of a row started at `started_at`: its microsecond, then `tiebreak` (0 to TIEBREAKS - 1)."""
    return math.floor(started_at * 1_000_000) * TIEBREAKS + tiebreak % TIEBREAKS


def first_key_at(seconds: float) -> int:
    """The lowest rowid a row started at or after `seconds` can have (a bound: filter on started_at too)."""
    return math.floor(seconds * 1_000_000) * TIEBREAKS


def write_rows(connection: sqlite3.Connection, rows: list[PreparedRow], *, share_gil: bool = True) -> int:
    """Write `rows` (skipping any whose id is already stored, logged); the number written.

    `share_gil`: pause now and then for an event loop in the same process (not in the writer's own process).
    """
    keyed = [(time_key(row.values[_STARTED], next(_tiebreaks)), row) for row in rows]
    before = connection.total_changes
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(_INSERT_ROW, [(key, *row.values) for key, row in keyed])
        if connection.total_changes - before != len(keyed):
            # An id already stored, or (rarely) a rowid taken by a row of the same microsecond: one at a time.
            connection.execute("ROLLBACK")
            connection.execute("BEGIN IMMEDIATE")
            keyed = _insert_one_by_one(connection, keyed)
        connection.executemany(
            _INSERT_TEXT,
            [
                (key, row.request_words, row.response_words)
                for key, row in keyed
                if row.request_words or row.response_words
            ],
        )
        rollups = RollupBatch()
        for number, (_, row) in enumerate(keyed, start=1):
            rollups.add(row.values)
            if share_gil and number % YIELD_EVERY_ROWS == 0:
                time.sleep(YIELD_S)
        rollups.write(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return len(keyed)


def _insert_one_by_one(
    connection: sqlite3.Connection, keyed: list[tuple[int, PreparedRow]]
) -> list[tuple[int, PreparedRow]]:
    stored = _stored_ids(connection, [row.values[0] for _, row in keyed])
    written: list[tuple[int, PreparedRow]] = []
    for key, row in keyed:
        if row.values[0] in stored:
            continue
        stored.add(row.values[0])
        while connection.execute(_INSERT_ROW, (key, *row.values)).rowcount == 0:
            key = _next_free_key(connection, key)  # this microsecond's slot was taken
        written.append((key, row))
    if len(written) < len(keyed):
        log.warning(
            "archive: %d requests were already archived under the same id; kept the first", len(keyed) - len(written)
        )
    return written


def _next_free_key(connection: sqlite3.Connection, taken: int) -> int:
    """The rowid after the last one taken in `taken`'s microsecond (or the next microsecond with room): one lookup
    a microsecond, where stepping one tiebreak at a time made thousands of rows at one instant (a test's frozen
    clock) cost a quadratic number of inserts."""
    start = taken
    while True:
        end = (start // TIEBREAKS + 1) * TIEBREAKS  # the first rowid of the next microsecond
        (last,) = connection.execute(
            "SELECT max(rowid) FROM requests WHERE rowid >= ? AND rowid < ?", (start, end)
        ).fetchone()
        if last is None:
            return start
        if last + 1 < end:
            return int(last) + 1
        start = end


def _stored_ids(connection: sqlite3.Connection, ids: list[str]) -> set[str]:
    stored: set[str] = set()
    for start in range(0, len(ids), _ID_LOOKUP_CHUNK):
        chunk = ids[start : start + _ID_LOOKUP_CHUNK]
        query = f"SELECT id FROM requests WHERE id IN ({', '.join('?' * len(chunk))})"
        stored.update(found for (found,) in connection.execute(query, chunk))
    return stored
