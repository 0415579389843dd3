"""The archive's writer: one background thread that owns every write connection to the month files.

Every `flush_interval_s` (sooner once BATCH_ROWS are queued) it takes what is queued, prepares each row (caps,
redaction, the streamed answer's text), and writes each month's rows, their text index entries and the rollups in
one transaction per month file. A batch that fails (disk full, a lock held past the busy timeout) is kept and
tried again on the next wake; the queue's bounds still hold meanwhile. Pruning runs here too, between batches,
so the writer never holds a pruned file open.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol, TypeVar

from gateway_core.archive.batch import YIELD_S, write_rows
from gateway_core.archive.bodies import Redactor
from gateway_core.archive.months import OLD_DIRECTORY, SUFFIX, list_months, month_add, month_path
from gateway_core.archive.readers import ReaderPool
from gateway_core.archive.record_queue import RecordQueue
from gateway_core.archive.rollups import register_functions
from gateway_core.archive.rows import PreparedRow, prepare
from gateway_core.archive.schema import BUSY_TIMEOUT_MS, ArchiveFileError, open_for_writing
from gateway_core.archive.settings import ArchiveSettings
from gateway_core.clock import Clock
from gateway_core.contracts.history_views import PruneAnswer
from gateway_core.contracts.instants import month_of

log = logging.getLogger("corral.archive")

BATCH_ROWS = 2000  # this many queued rows wake the writer before its interval
ERROR_LOG_EVERY_S = 10.0
RETENTION_EVERY_S = 3600.0
PREPARE_YIELD_EVERY_ROWS = 32  # about 0.5 ms of preparing (bodies, text): then the GIL goes back to the loop
OPEN_MONTHS = 2  # write connections kept open: this month and the last (rows near midnight of the 1st)
WAL_SIDECARS = ("-wal", "-shm")

T = TypeVar("T")


class WriterMetrics(Protocol):
    """What the writer records: metrics.py's ArchiveMetrics, or writer_child.py's tally sent to the daemon."""

    def rows_written(self, count: int) -> None: ...

    def rows_dropped(self, count: int) -> None: ...

    def write_failed(self) -> None: ...

    def batch_written(self, seconds: float) -> None: ...


class ArchiveWriter:
    def __init__(
        self,
        settings: ArchiveSettings,
        queue: RecordQueue,
        readers: ReaderPool,
        clock: Clock,
        metrics: WriterMetrics,
        dropped: Callable[[], int],
        on_change: Callable[[], None],
        *,
        share_gil: bool = True,
    ) -> None:
        self._settings = settings
        self._share_gil = share_gil  # an event loop runs in this process: hand it the GIL now and then
        self._queue = queue
        self._readers = readers
        self._clock = clock
        self._metrics = metrics
        self._dropped = dropped  # the archive's count of rows refused at the queue
        self._on_change = on_change  # called after every cycle, from this thread
        self._redactor = Redactor(settings.redact)
        self._wake = threading.Event()
        self._lock = threading.Lock()  # guards _commands and _waiters, which the loop appends to
        self._commands: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._waiters: list[tuple[int, int, Future[None]]] = []  # (rows accepted, cycle, future)
        self._cycles = 0  # cycles started
        self._pending: dict[str, list[tuple[PreparedRow, int]]] = {}
        self._connections: OrderedDict[str, sqlite3.Connection] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._deadline = float("inf")
        self._error_logged_at = float("-inf")
        self._next_retention = float("-inf")
        self._drops_seen = 0
        self._unusable_file = False  # the last failure was a file no retry can fix (newer schema, not an archive)
        self.finished: Future[None] = Future()
        # Read by status() from the loop; written here only.
        self.written = 0
        self.discarded = 0  # records that could not be prepared (a bug): counted as dropped
        self.failing = False
        self.last_error: str | None = None
        self.settled_drops = 0  # drops seen before the last full cycle without any: "dropping" while more came

    # -- the loop's side -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="corral-archive-writer", daemon=True)
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def wake(self) -> None:
        self._wake.set()

    def submit(self, command: Callable[[], T]) -> Future[T]:
        """Run `command` in the writer thread between batches; its result (or error) comes back in the future."""
        future: Future[T] = Future()
        with self._lock:
            self._commands.append((command, future))
        self._wake.set()
        return future

    def prune_later(self, before: str, current: str) -> Future[PruneAnswer]:
        """Prune between two batches (this writer holds the files' connections)."""
        return self.submit(lambda: self.prune(before, current))

    def when_written(self, accepted: int) -> Future[None]:
        """A future done once the first `accepted` rows ever queued are written (or given up), at the end of a
        whole cycle begun after this call (so retention, too, has seen the clock as it is now)."""
        future: Future[None] = Future()
        with self._lock:
            self._waiters.append((accepted, self._cycles, future))
        self._wake.set()
        return future

    def stop(self, within_s: float) -> Future[None]:
        """Write what is queued, then close every file; give up on what is left after `within_s`."""
        self._deadline = time.monotonic() + within_s
        self._stopping = True
        self._wake.set()
        return self.finished

    # -- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._cycle()
                if self._stopping and (
                    not self._has_work() or time.monotonic() >= self._deadline or (self.failing and self._unusable_file)
                ):
                    break
                if self._stopping and self.failing:
                    self._wake.wait(0.1)  # keep retrying until the deadline, without spinning
                elif not self._stopping:
                    self._wake.wait(self._settings.flush_interval_s)
                self._wake.clear()
        finally:
            self._finish()

    def _has_work(self) -> bool:
        return bool(self._pending) or self._queue.waiting() > 0 or bool(self._commands)

    def _cycle(self) -> None:
        self._cycles += 1
        try:
            self._run_commands()
            self._take()
            self._write_pending()
            self._retention()
        except Exception as error:  # the writer must never die: report, keep the batch, try again
            self._failed(error)
        self._settle_waiters()
        self._on_change()

    def _run_commands(self) -> None:
        with self._lock:
            commands, self._commands = self._commands, []
        for command, future in commands:
            try:
                future.set_result(command())
            except Exception as error:
                future.set_exception(error)

    def _take(self) -> None:
        for number, (record, size) in enumerate(self._queue.take(), start=1):
            if self._share_gil and number % PREPARE_YIELD_EVERY_ROWS == 0:
                time.sleep(YIELD_S)
            try:
                row = prepare(record, self._redactor, self._settings.body_cap)
            except Exception:
                log.exception("archive: request %s could not be prepared for writing; it is not archived", record.id)
                self._queue.settle(1, size)
                self.discarded += 1
                self._metrics.rows_dropped(1)
                continue
            self._pending.setdefault(row.month, []).append((row, size))

    def _write_pending(self) -> None:
        for month in sorted(self._pending):
            rows = self._pending[month]
            started = time.perf_counter()
            try:
                written = write_rows(self._connection(month), [row for row, _ in rows], share_gil=self._share_gil)
            except Exception as error:  # disk full, locked, unusable file: keep the rows for the next try
                self._close_connection(month, checkpoint=False)
                self._failed(error)
                continue
            self._metrics.batch_written(time.perf_counter() - started)
            del self._pending[month]
            self._queue.settle(len(rows), sum(size for _, size in rows))
            self.written += written
            self._metrics.rows_written(written)
        if not self._pending:
            self.failing = False
            dropped = self._dropped()
            self.settled_drops, self._drops_seen = self._drops_seen, dropped

    def _connection(self, month: str) -> sqlite3.Connection:
        connection = self._connections.get(month)
        if connection is not None:
            self._connections.move_to_end(month)
            return connection
        self._settings.directory.mkdir(parents=True, exist_ok=True)
        connection = open_for_writing(month_path(self._settings.directory, month))
        register_functions(connection)
        self._connections[month] = connection
        while len(self._connections) > OPEN_MONTHS:
            self._close_connection(next(iter(self._connections)))
        return connection

    def _close_connection(self, month: str, *, checkpoint: bool = True) -> None:
        connection = self._connections.pop(month, None)
        if connection is None:
            return
        with contextlib.suppress(sqlite3.Error):
            if checkpoint:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()

    def _failed(self, error: BaseException) -> None:
        self.failing = True
        self._unusable_file = isinstance(error, ArchiveFileError)
        self.last_error = f"{type(error).__name__}: {error}"
        self._metrics.write_failed()
        now = time.monotonic()
        if now - self._error_logged_at >= ERROR_LOG_EVERY_S:
            self._error_logged_at = now
            held = sum(len(rows) for rows in self._pending.values())
            log.error(
                "archive: writing failed (%s); %d rows kept to try again, %d queued. Check the disk and %s",
                self.last_error,
                held,
                self._queue.depth,
                self._settings.directory,
            )

    def _settle_waiters(self) -> None:
        done, cycle = self._queue.done, self._cycles
        with self._lock:
            ready = [future for accepted, since, future in self._waiters if accepted <= done and since < cycle]
            self._waiters = [w for w in self._waiters if not (w[0] <= done and w[1] < cycle)]
        for future in ready:
            future.set_result(None)

    def _finish(self) -> None:
        left = self._queue.depth
        if left:
            log.error(
                "archive: %d requests could not be written before shutdown (%s); they are not archived",
                left,
                self.last_error or "the writer ran out of time",
            )
        for month in list(self._connections):
            self._close_connection(month)
        with self._lock:
            waiters, self._waiters = self._waiters, []
            commands, self._commands = self._commands, []
        for accepted, _, future in waiters:
            if accepted <= self._queue.done:
                future.set_result(None)
            else:
                future.set_exception(RuntimeError(f"the archive closed with {left} requests not written"))
        for _, future in commands:
            future.set_exception(RuntimeError("the archive closed before this could run"))
        self.finished.set_result(None)

    # -- retention and pruning ---------------------------------------------------------------------------

    def _retention(self) -> None:
        keep = self._settings.retain_months
        now = self._clock.time()
        if keep is None or now < self._next_retention:
            return
        self._next_retention = now + RETENTION_EVERY_S
        current = month_of(now)
        answer = self.prune(month_add(current, -(keep - 1)), current)
        if answer["months"]:
            log.info(
                "archive: retention (%d months) %s %s",
                keep,
                answer["action"],
                ", ".join(answer["months"]),
            )

    def prune(self, before: str, current: str) -> PruneAnswer:
        """Remove the month files before `before`, never `current`'s: moved to old/ or deleted (this thread)."""
        directory = self._settings.directory
        months = [month for month in list_months(directory) if month < before and month != current]
        for month in months:
            self._close_connection(month)
        self._readers.forget(months)
        moved_to = directory / OLD_DIRECTORY if self._settings.pruned == "move" else None
        for month in months:
            path = month_path(directory, month)
            self._fold_wal(path)
            if moved_to is None:
                for sidecar in ("", *WAL_SIDECARS):
                    Path(f"{path}{sidecar}").unlink(missing_ok=True)
            else:
                moved_to.mkdir(exist_ok=True)
                target = _free_name(moved_to, month)
                for sidecar in WAL_SIDECARS:
                    if Path(f"{path}{sidecar}").exists():
                        os.replace(f"{path}{sidecar}", f"{target}{sidecar}")
                os.replace(path, target)
        return {
            "before": before,
            "months": months,
            "action": "deleted" if moved_to is None else "moved",
            "moved_to": None if moved_to is None else str(moved_to),
        }

    def _fold_wal(self, path: Path) -> None:
        """Checkpoint a leftover WAL (a crash's) into the file, so that what is moved stands on its own."""
        if not Path(f"{path}-wal").exists():
            return
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _free_name(directory: Path, month: str) -> Path:
    """old/YYYY-MM.sqlite, or old/YYYY-MM.N.sqlite when a month of that name was moved there before."""
    target = directory / f"{month}{SUFFIX}"
    number = 1
    while target.exists():
        target = directory / f"{month}.{number}{SUFFIX}"
        number += 1
    return target
