"""The deliveries on disk: <data-dir>/callbacks.sqlite, so a kill -9 during retries loses none.

One row per delivery (its id is the webhook-id), holding the exact body bytes every attempt sends, where it is in
its retry schedule and how the last attempt went. WAL with synchronous=FULL: a write has reached the disk when it
returns. One connection on one thread (store/write_thread.py, as the job store's writer): writes that arrive while
a commit runs wait together for the next one (group commit), each in a savepoint of its own so one failing write
spoils none of the others; reads (few: the admin's pages and each attempt's body) take their turn on it.
No secret is ever written here: the signatures are made at each attempt, from the key's secrets in config.json.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast

from gateway_core.contracts.jobs import CallbackType, DeliveryState, DeliveryView
from gateway_core.store.write_thread import WriteThread

SCHEMA_VERSION = 1
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY,          -- insertion order: the list's cursor
    id TEXT NOT NULL UNIQUE,          -- the webhook-id
    job_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    url TEXT NOT NULL,
    type TEXT NOT NULL,
    body BLOB NOT NULL,               -- the exact bytes every attempt sends
    state TEXT NOT NULL,              -- pending, delivered, dead
    attempts INTEGER NOT NULL,        -- every attempt ever made, redeliveries included
    step INTEGER NOT NULL,            -- failed attempts since the schedule (re)started: the next wait's index
    created_at REAL NOT NULL,
    next_attempt_at REAL,             -- pending only
    delivered_at REAL,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (state, seq);
"""
_COLUMNS = (
    "seq, id, job_id, key_id, url, type, state, attempts, step, created_at, next_attempt_at, delivered_at, "
    "last_status, last_error"
)


class DeliveryStoreError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Delivery:
    """One callback delivery, without its body (read from disk for each attempt)."""

    id: str
    job_id: str
    key_id: str
    url: str
    type: CallbackType
    state: DeliveryState
    attempts: int
    step: int
    created_at: float
    next_attempt_at: float | None
    delivered_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    seq: int = 0

    def view(self) -> DeliveryView:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "key_id": self.key_id,
            "url": self.url,
            "type": self.type,
            "state": self.state,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at if self.state == "pending" else None,
            "delivered_at": self.delivered_at,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


def _delivery(row: tuple[Any, ...]) -> Delivery:
    seq, id_, job_id, key_id, url, type_, state, attempts, step, created, next_at, delivered, status, error = row
    return Delivery(
        id=id_,
        job_id=job_id,
        key_id=key_id,
        url=url,
        type=cast(CallbackType, type_),
        state=cast(DeliveryState, state),
        attempts=attempts,
        step=step,
        created_at=created,
        next_attempt_at=next_at,
        delivered_at=delivered,
        last_status=status,
        last_error=error,
        seq=seq,
    )


class DeliveryStore:
    """callbacks.sqlite behind async calls; `open` before anything else, `close` at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = WriteThread(self._connect, name="callbacks-store")

    # -- lifecycle ------------------------------------------------------------------------------------

    async def open(self) -> list[Delivery]:
        """Open (or create) the file; the pending deliveries, to be resumed."""
        await self._thread.start()
        return await self._run(lambda db: self._select(db, "WHERE state = 'pending' ORDER BY seq", ()))

    async def close(self) -> None:
        """Commit every write already handed in, then close the file."""
        await self._thread.close()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise DeliveryStoreError(
                    f"{self.path} has schema version {version}, newer than this corral-core understands "
                    f"({SCHEMA_VERSION}); upgrade Corral, or move the file aside to start without its deliveries"
                )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        self.path.chmod(0o600)
        return db

    # -- writing --------------------------------------------------------------------------------------

    async def add(self, delivery: Delivery, body: bytes) -> tuple[Delivery, bool]:
        """Durable when it returns. The same id again: the delivery already stored, and False."""

        def insert(db: sqlite3.Connection) -> tuple[Delivery, bool]:
            cursor = db.execute(
                "INSERT INTO deliveries (id, job_id, key_id, url, type, body, state, attempts, step, created_at, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    delivery.id,
                    delivery.job_id,
                    delivery.key_id,
                    delivery.url,
                    delivery.type,
                    body,
                    delivery.state,
                    delivery.attempts,
                    delivery.step,
                    delivery.created_at,
                    delivery.next_attempt_at,
                ),
            )
            if cursor.rowcount == 1:
                return replace(delivery, seq=cast(int, cursor.lastrowid)), True
            (existing,) = self._select(db, "WHERE id = ?", (delivery.id,))
            return existing, False

        return await self._write(insert)

    async def save(self, delivery: Delivery) -> None:
        """Its state after an attempt or a redelivery. Durable when it returns."""

        def update(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, step = ?, next_attempt_at = ?, delivered_at = ?, "
                "last_status = ?, last_error = ? WHERE id = ?",
                (
                    delivery.state,
                    delivery.attempts,
                    delivery.step,
                    delivery.next_attempt_at,
                    delivery.delivered_at,
                    delivery.last_status,
                    delivery.last_error,
                    delivery.id,
                ),
            )

        await self._write(update)

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._thread.run(operation)
        return result

    # -- reading --------------------------------------------------------------------------------------

    async def body(self, delivery_id: str) -> bytes:
        def read(db: sqlite3.Connection) -> bytes:
            row = db.execute("SELECT body FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                raise KeyError(delivery_id)
            return bytes(row[0])

        return await self._run(read)

    async def get(self, delivery_id: str) -> Delivery | None:
        found = await self._run(lambda db: self._select(db, "WHERE id = ?", (delivery_id,)))
        return found[0] if found else None

    async def page(
        self, state: DeliveryState | None, limit: int, before_seq: int | None
    ) -> tuple[list[Delivery], bool]:
        """Newest first, from before `before_seq`; and whether more follow."""
        clauses: list[str] = []
        parameters: list[object] = []
        if state is not None:
            clauses.append("state = ?")
            parameters.append(state)
        if before_seq is not None:
            clauses.append("seq < ?")
            parameters.append(before_seq)
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        rows = await self._run(
            lambda db: self._select(db, f"{where}ORDER BY seq DESC LIMIT ?", (*parameters, limit + 1))
        )
        return rows[:limit], len(rows) > limit

    async def counts(self) -> dict[DeliveryState, int]:
        rows = await self._run(
            lambda db: db.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
        )
        counts: dict[DeliveryState, int] = {"pending": 0, "delivered": 0, "dead": 0}
        counts.update({cast(DeliveryState, state): count for state, count in rows})
        return counts

    @staticmethod
    def _select(db: sqlite3.Connection, tail: str, parameters: tuple[Any, ...]) -> list[Delivery]:
        return [_delivery(row) for row in db.execute(f"SELECT {_COLUMNS} FROM deliveries {tail}", parameters)]

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """A read, on the store's one thread and connection, in turn with the writes."""
        result: T = await self._thread.run(operation)
        return result
