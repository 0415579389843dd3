"""The job store over `<data-dir>/jobs.sqlite`: WAL, synchronous=FULL, one writer thread with group commit
(write_thread.py), reads on a read-only connection of their own.

Every write is durable when its call returns. A kill -9 loses nothing that was answered: a job running then is
still `running` on disk, turned back to `queued` (its attempts kept) by the next open().
"""

from __future__ import annotations

import builtins
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec

from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.jobs import JOB_STATES, JobCounts, JobError, JobState, JobUsage
from gateway_core.jobs.model import Job
from gateway_core.store.write_thread import Write, WriteThread

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,  -- submission order
    id TEXT NOT NULL UNIQUE,
    key_id TEXT NOT NULL,
    ref_id TEXT,
    tag TEXT,
    state TEXT NOT NULL,
    route TEXT NOT NULL,
    model TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL,
    base_attempts INTEGER NOT NULL,
    provider TEXT,
    pinned_provider TEXT,
    reply_to TEXT,
    usage TEXT,  -- JSON
    error TEXT,  -- JSON
    finals INTEGER NOT NULL,
    callback_due INTEGER NOT NULL,
    body BLOB NOT NULL,
    result BLOB
);
CREATE UNIQUE INDEX jobs_key_ref ON jobs (key_id, ref_id);
CREATE INDEX jobs_key_seq ON jobs (key_id, seq);
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE INDEX jobs_tag ON jobs (tag, seq) WHERE tag IS NOT NULL;
CREATE INDEX jobs_callback_due ON jobs (seq) WHERE callback_due = 1;
"""

# Column order of every SELECT, and of Job's constructor below.
_COLUMNS = (
    "seq, id, key_id, ref_id, tag, state, route, model, priority, created_at, queued_at, started_at, finished_at,"
    " attempts, base_attempts, provider, pinned_provider, reply_to, usage, error, finals, callback_due, body, result"
)
_SELECT = f"SELECT {_COLUMNS} FROM jobs"
_INSERT = f"INSERT INTO jobs ({_COLUMNS}) VALUES (NULL{', ?' * 23}) ON CONFLICT (key_id, ref_id) DO NOTHING"

_usage_decoder = msgspec.json.Decoder(JobUsage)
_error_decoder = msgspec.json.Decoder(JobError)


def _json(value: object | None) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        seq=row[0],
        id=row[1],
        key_id=row[2],
        ref_id=row[3],
        tag=row[4],
        state=row[5],
        route=row[6],
        model=row[7],
        priority=row[8],
        created_at=row[9],
        queued_at=row[10],
        started_at=row[11],
        finished_at=row[12],
        attempts=row[13],
        base_attempts=row[14],
        provider=row[15],
        pinned_provider=row[16],
        reply_to=row[17],
        usage=None if row[18] is None else _usage_decoder.decode(row[18]),
        error=None if row[19] is None else _error_decoder.decode(row[19]),
        finals=row[20],
        callback_due=bool(row[21]),
        body=row[22],
        result=row[23],
    )


def _one(connection: sqlite3.Connection, job_id: str) -> Job | None:
    row = connection.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else _job(row)


class SqliteJobStore:
    def __init__(self, path: Path):
        self.path = path
        self._writer = WriteThread(self._connect_writer, name="corral-jobs-writer")
        self._reader: sqlite3.Connection | None = None

    # -- opening and closing

    def _connect_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it (its -wal and -shm files take the same mode): it holds the prompts.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = FULL")  # an answered submit survives a power cut too
            version: int = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise GatewayError(
                    500,
                    f"{self.path} has job schema version {version}, newer than this corral-core's"
                    f" ({SCHEMA_VERSION}); upgrade corral-core or move the file away",
                    code="job_store_version",
                )
            if version == 0:
                # One script, one transaction: the tables and the version appear together or not at all.
                connection.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        except BaseException:
            connection.close()
            raise
        return connection

    async def open(self) -> list[Job]:
        await self._writer.start()
        uri = f"file:{quote(str(self.path))}?mode=ro"
        self._reader = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        self._reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

        def recover(connection: sqlite3.Connection) -> list[Job]:
            # A job running at a crash runs again: back to queued, its attempts kept.
            connection.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'")
            rows = connection.execute(f"{_SELECT} WHERE state = 'queued' ORDER BY seq").fetchall()
            return [_job(row) for row in rows]

        jobs: list[Job] = await self._write(recover)
        return jobs

    @property
    def transactions(self) -> int:
        """Transactions committed since open(): the writes of concurrent callers share one."""
        return self._writer.transactions

    async def close(self) -> None:
        await self._writer.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # -- writes (each durable when it returns)

    async def add(self, job: Job) -> tuple[Job, bool]:
        values = (
            job.id,
            job.key_id,
            job.ref_id,
            job.tag,
            job.state,
            job.route,
            job.model,
            job.priority,
            job.created_at,
            job.queued_at,
            job.started_at,
            job.finished_at,
            job.attempts,
            job.base_attempts,
            job.provider,
            job.pinned_provider,
            job.reply_to,
            _json(job.usage),
            _json(job.error),
            job.finals,
            int(job.callback_due),
            job.body,
            job.result,
        )

        def insert(connection: sqlite3.Connection) -> tuple[Job, bool]:
            cursor = connection.execute(_INSERT, values)
            if cursor.rowcount == 1:
                assert cursor.lastrowid is not None
                return msgspec.structs.replace(job, seq=cursor.lastrowid), True
            row = connection.execute(f"{_SELECT} WHERE key_id = ? AND ref_id = ?", (job.key_id, job.ref_id)).fetchone()
            return _job(row), False

        result: tuple[Job, bool] = await self._write(insert)
        return result

    async def _write(self, write: Write) -> Any:
        """Run one write in the next group commit; a failed commit (a full disk, an I/O error) is a 503 that says
        so, never a bare SQLite error."""
        try:
            return await self._writer.run(write)
        except sqlite3.Error as error:
            raise GatewayError(
                503,
                f"the job store {self.path} could not commit ({error}); check the disk it is on, then try again",
                code="job_store_unavailable",
                headers={"retry-after": "5"},
            ) from error

    async def _update(self, job_id: str, sql: str, params: tuple[Any, ...]) -> Job | None:
        def update(connection: sqlite3.Connection) -> Job | None:
            connection.execute(sql, (*params, job_id))
            return _one(connection, job_id)

        job: Job | None = await self._write(update)
        return job

    async def started(self, job_id: str, attempt: int, provider: str, at: float) -> Job | None:
        return await self._update(
            job_id,
            "UPDATE jobs SET state = 'running', attempts = ?, provider = ?, started_at = ? WHERE id = ?",
            (attempt, provider, at),
        )

    async def requeue(self, job_id: str, error: JobError | None) -> Job | None:
        return await self._update(job_id, "UPDATE jobs SET state = 'queued', error = ? WHERE id = ?", (_json(error),))

    async def finished(
        self,
        job_id: str,
        state: JobState,
        at: float,
        usage: JobUsage | None,
        result: bytes | None,
        error: JobError | None,
        callback_due: bool,
    ) -> Job | None:
        return await self._update(
            job_id,
            "UPDATE jobs SET state = ?, finished_at = ?, usage = ?, result = ?, error = ?, finals = finals + 1,"
            " callback_due = ? WHERE id = ?",
            (state, at, _json(usage), result, _json(error), int(callback_due)),
        )

    async def callback_enqueued(self, job_id: str) -> None:
        await self._update(job_id, "UPDATE jobs SET callback_due = 0 WHERE id = ?", ())

    async def retry(self, job_id: str, at: float) -> Job | None:
        return await self._update(
            job_id,
            "UPDATE jobs SET state = 'queued', queued_at = ?, base_attempts = attempts, finished_at = NULL,"
            " usage = NULL, result = NULL, error = NULL WHERE id = ?",
            (at,),
        )

    # -- reads (the read-only connection; WAL lets them run beside the writer)

    def _read(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("the job store is not open")
        return self._reader

    async def get(self, job_id: str) -> Job | None:
        return _one(self._read(), job_id)

    async def find_ref(self, key_id: str, ref_id: str) -> Job | None:
        row = self._read().execute(f"{_SELECT} WHERE key_id = ? AND ref_id = ?", (key_id, ref_id)).fetchone()
        return None if row is None else _job(row)

    async def list(
        self, key_id: str | None, tag: str | None, state: JobState | None, limit: int, cursor: str | None
    ) -> tuple[builtins.list[Job], str | None]:
        where: builtins.list[str] = []
        params: builtins.list[Any] = []
        for column, value in (("key_id", key_id), ("tag", tag), ("state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if cursor is not None:
            if not cursor.isdigit():
                raise GatewayError(
                    400, "cursor is not one this API gave out; pass a page's next_cursor", param="cursor"
                )
            where.append("seq < ?")
            params.append(int(cursor))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._read().execute(f"{_SELECT}{clause} ORDER BY seq DESC LIMIT ?", (*params, limit + 1)).fetchall()
        jobs = [_job(row) for row in rows[:limit]]
        next_cursor = str(jobs[-1].seq) if len(rows) > limit else None
        return jobs, next_cursor

    async def callbacks_due(self) -> builtins.list[Job]:
        rows = self._read().execute(f"{_SELECT} WHERE callback_due = 1 ORDER BY seq").fetchall()
        return [_job(row) for row in rows]

    async def counts(self) -> JobCounts:
        found = dict(self._read().execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        counts: dict[str, int] = {state: int(found.get(state, 0)) for state in JOB_STATES}
        return JobCounts(
            queued=counts["queued"],
            running=counts["running"],
            succeeded=counts["succeeded"],
            failed=counts["failed"],
            cancelled=counts["cancelled"],
        )
