"""One writer connection on a thread of its own, with group commit: the writes waiting when a COMMIT ends all
go into the next transaction, so concurrent callers share one fsync (synchronous=FULL) instead of one each.

Each write runs inside its own SAVEPOINT: one that raises is undone alone and fails only its own caller.
A caller's future resolves after the COMMIT that made its write durable, never before.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BATCH = 1024  # writes in one transaction at most: bounds how long the first of them waits for its COMMIT

Write = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class _Pending:
    write: Write
    future: asyncio.Future[Any]


class WriteThread:
    def __init__(self, connect: Callable[[], sqlite3.Connection], *, name: str):
        self._connect = connect
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened: asyncio.Future[None] | None = None
        self._closed = False
        self.transactions = 0  # committed so far: fewer than the writes when group commit shares them

    async def start(self) -> None:
        """Open the connection on the thread (connect() runs there); raises what it raised."""
        self._loop = asyncio.get_running_loop()
        self._opened = self._loop.create_future()
        self._thread.start()
        await self._opened

    async def run(self, write: Write) -> Any:
        """Run `write(connection)` in the next transaction; answers its result once that COMMIT has returned."""
        if self._closed or self._loop is None:
            raise RuntimeError("the store is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Pending(write, future))
        return await future

    async def close(self) -> None:
        """Commit every write already handed in, then close the connection and end the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        assert self._loop is not None
        assert self._opened is not None
        try:
            connection = self._connect()
        except BaseException as error:  # handed to start()'s caller
            self._settle([(self._opened, None, error)])
            return
        self._settle([(self._opened, None, None)])
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._commit(connection, batch)
                if stop:
                    return
        finally:
            connection.close()

    def _commit(self, connection: sqlite3.Connection, batch: list[_Pending]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for pending in batch:
                connection.execute("SAVEPOINT one_write")
                try:
                    result = pending.write(connection)
                except Exception as error:  # this caller's failure, not the batch's
                    connection.execute("ROLLBACK TO one_write")
                    outcomes.append((pending.future, None, error))
                else:
                    outcomes.append((pending.future, result, None))
                connection.execute("RELEASE one_write")
            connection.execute("COMMIT")
            self.transactions += 1
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            outcomes = [(pending.future, None, error) for pending in batch]
        self._settle(outcomes)

    def _settle(self, outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(_resolve, outcomes)


def _resolve(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
