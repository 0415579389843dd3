"""One month file's schema, and opening a file: for the writer (created if new), or read-only for the readers.

docs/architecture.md ("The request archive") documents every table and column. A file carries its schema
version twice: `PRAGMA user_version` and the `meta` table (with when it was created and by which corral). A file
of a newer version than this code knows is refused, never read or written.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import gateway_core
from gateway_core.contracts.errors import GatewayError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 2000  # a writer blocked this long by another connection's lock fails the batch, kept for later

# The requests table's columns, in order (export writes them so, import reads them so). Bodies come last: a
# query that does not read them never touches their overflow pages.
REQUEST_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "route",
    "started_at",
    "first_token_at",
    "ended_at",
    "key_id",
    "key_name",
    "model",
    "provider",
    "upstream_model",
    "status",
    "error_code",
    "error_message",
    "providers_tried",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "ttft_s",
    "tokens_per_s",
    "stream",
    "client_address",
    "bytes_in",
    "bytes_out",
    "capture",
    "gpu_seconds",
    "energy_joules",
    "request_body",
    "request_bytes",
    "request_truncated",
    "response_body",
    "response_format",
    "response_bytes",
    "response_truncated",
)
BODY_COLUMNS = REQUEST_COLUMNS[REQUEST_COLUMNS.index("request_body") :]
ROW_COLUMNS = REQUEST_COLUMNS[: REQUEST_COLUMNS.index("request_body")]  # a history row: everything but bodies
BOOLEAN_COLUMNS = frozenset({"stream", "request_truncated", "response_truncated"})

_ROLLUP_MEASURES = """
    key_name TEXT,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    errors_auth INTEGER NOT NULL,
    errors_rate_limit INTEGER NOT NULL,
    errors_client INTEGER NOT NULL,
    errors_cancelled INTEGER NOT NULL,
    errors_internal INTEGER NOT NULL,
    errors_upstream INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    generation_s REAL NOT NULL,
    generation_tokens INTEGER NOT NULL,
    gpu_seconds REAL NOT NULL,
    gpu_requests INTEGER NOT NULL,
    energy_joules REAL NOT NULL,
    energy_requests INTEGER NOT NULL,
    latency_hist TEXT,
    ttft_hist TEXT
"""

# The requests table's rowid is the row's start time (batch.py's time_key), so an index on one column is ordered
# by time within each of its values: (key_id) serves "this key, newest first, between these times".
SCHEMA = f"""
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE requests (
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    route TEXT NOT NULL,
    started_at REAL NOT NULL,
    first_token_at REAL,
    ended_at REAL NOT NULL,
    key_id TEXT,
    key_name TEXT,
    model TEXT,
    provider TEXT,
    upstream_model TEXT,
    status INTEGER NOT NULL,
    error_code TEXT,
    error_message TEXT,
    providers_tried TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s REAL NOT NULL,
    ttft_s REAL,
    tokens_per_s REAL,
    stream INTEGER NOT NULL,
    client_address TEXT,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    capture TEXT NOT NULL,
    gpu_seconds REAL,
    energy_joules REAL,
    request_body TEXT,
    request_bytes INTEGER,
    request_truncated INTEGER NOT NULL,
    response_body TEXT,
    response_format TEXT,
    response_bytes INTEGER,
    response_truncated INTEGER NOT NULL
);
CREATE INDEX requests_by_key ON requests (key_id);
CREATE INDEX requests_by_key_name ON requests (key_name);
CREATE INDEX requests_by_model ON requests (model);
CREATE INDEX requests_by_provider ON requests (provider);
CREATE INDEX requests_by_status ON requests (status);
CREATE VIRTUAL TABLE requests_text USING fts5(
    request, response, content='', columnsize=0, tokenize='unicode61 remove_diacritics 2'
);
CREATE TABLE rollups (
    hour_start INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    {_ROLLUP_MEASURES},
    PRIMARY KEY (hour_start, key_id, model, provider)
) WITHOUT ROWID;
CREATE TABLE daily_rollups (
    day_start INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    {_ROLLUP_MEASURES},
    PRIMARY KEY (day_start, key_id, model, provider)
) WITHOUT ROWID;
"""


class ArchiveFileError(GatewayError):
    """A month file that cannot be used: newer than this corral, not an archive, or unreadable."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(409, f"archive file {path}: {problem}", code="archive_file_unusable")
        self.path = path


def open_for_writing(path: Path) -> sqlite3.Connection:
    """The writer's connection to a month file, creating the file and its schema if it is new."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = _checked_version(connection, path)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")  # in WAL: a commit survives a crash of the process
        connection.execute("PRAGMA cache_size = -65536")  # 64 MiB: the indexes' upper pages stay in memory
        if version == 0:
            _create(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def open_for_reading(path: Path) -> sqlite3.Connection | None:
    """A read-only connection, for one reader thread at a time; None while the file holds no schema yet."""
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise ArchiveFileError(path, f"cannot be opened ({error}); check its permissions") from None
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if _checked_version(connection, path) == 0:
            connection.close()
            return None
    except BaseException:
        connection.close()
        raise
    return connection


def _checked_version(connection: sqlite3.Connection, path: Path) -> int:
    try:
        version: int = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise ArchiveFileError(path, f"is not a readable SQLite file ({error}); move it out of the archive") from None
    if version > SCHEMA_VERSION:
        raise ArchiveFileError(
            path,
            f"has schema version {version}, newer than the {SCHEMA_VERSION} this corral "
            f"{gateway_core.__version__} knows; upgrade corral to read it, or move the file out of the archive",
        )
    if version == 0 and tables:
        raise ArchiveFileError(path, "is an SQLite file but not a Corral archive; move it out of the archive")
    return version


def _create(connection: sqlite3.Connection, path: Path) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        if connection.execute("PRAGMA user_version").fetchone()[0] == 0:  # nobody created it meanwhile
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "created_at": str(time.time()),
                "corral_version": gateway_core.__version__,
                "month": path.stem,
            }
            connection.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", meta.items())
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
