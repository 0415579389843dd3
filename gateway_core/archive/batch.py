"""One batch of rows into one month file, in one transaction: the rows, their text index entries, the rollups.

The writer calls it for every batch, and import for every block of lines, so an imported file is indexed and
rolled up exactly as a written one.
"""

from __future__ import annotations

import logging
import sqlite3

from gateway_core.archive.rollups import RollupBatch
from gateway_core.archive.rows import PreparedRow
from gateway_core.archive.schema import REQUEST_COLUMNS

log = logging.getLogger("corral.archive")

_INSERT_ROW = (
    f"INSERT OR IGNORE INTO requests (rowid, {', '.join(REQUEST_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(REQUEST_COLUMNS) + 1))})"
)
_INSERT_TEXT = "INSERT INTO requests_text (rowid, request, response) VALUES (?, ?, ?)"
_ID_LOOKUP_CHUNK = 500


def write_rows(connection: sqlite3.Connection, rows: list[PreparedRow]) -> int:
    """Write `rows` (skipping any whose id is already stored, logged); the number written."""
    before = connection.total_changes
    connection.execute("BEGIN IMMEDIATE")
    try:
        # The rowids are given here, so that each text index entry names its row; this connection holds the
        # file's write lock from BEGIN IMMEDIATE, so nobody else takes them meanwhile.
        first = connection.execute("SELECT coalesce(max(rowid), 0) + 1 FROM requests").fetchone()[0]
        connection.executemany(_INSERT_ROW, [(first + i, *row.values) for i, row in enumerate(rows)])
        if connection.total_changes - before != len(rows):  # an id already stored: write only the new ones
            connection.execute("ROLLBACK")
            return write_rows(connection, _without_duplicates(connection, rows))
        connection.executemany(
            _INSERT_TEXT,
            [
                (first + i, row.request_words, row.response_words)
                for i, row in enumerate(rows)
                if row.request_words or row.response_words
            ],
        )
        rollups = RollupBatch()
        for row in rows:
            rollups.add(row.values)
        rollups.write(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return len(rows)


def _without_duplicates(connection: sqlite3.Connection, rows: list[PreparedRow]) -> list[PreparedRow]:
    ids = [row.values[0] for row in rows]
    stored: set[str] = set()
    for start in range(0, len(ids), _ID_LOOKUP_CHUNK):
        chunk = ids[start : start + _ID_LOOKUP_CHUNK]
        query = f"SELECT id FROM requests WHERE id IN ({', '.join('?' * len(chunk))})"
        stored.update(found for (found,) in connection.execute(query, chunk))
    kept: list[PreparedRow] = []
    for row in rows:
        if row.values[0] not in stored:
            stored.add(row.values[0])
            kept.append(row)
    log.warning("archive: %d requests were already archived under the same id; kept the first", len(rows) - len(kept))
    return kept
