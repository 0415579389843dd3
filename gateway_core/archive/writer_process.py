"""The archive writer as a process of its own (writer_child.py), seen from corral-core as ArchiveWriter is.

Why a process: the writer's work is mostly Python (preparing each row) between SQLite calls, and in a thread of
the daemon it takes the GIL from the event loop; measured against the null upstream on 2 cores that cost the
gateway 8 to 16 % of its best rate. Here corral-core only pickles what is queued (under 1 µs a row) and writes it
to the child's stdin, on the event loop itself, 200 rows at a time: a second Python thread doing it would contend
with the loop for the GIL at every pipe write (a thread cost about 2 % more than this). The child runs at the
lowest CPU priority (writer_child.py `background`).

Rows sent but not yet written still count against the queue's bounds, as in the thread: the child reports after
each cycle what it has written, and only then are they settled. If the child dies, what it held is counted as
dropped (and logged), and a new one is started.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import sys
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from msgspec.structs import astuple

from gateway_core.archive.pipe_frames import LENGTH  # its framing, written here with asyncio's streams
from gateway_core.archive.readers import ReaderPool
from gateway_core.archive.record_queue import RecordQueue
from gateway_core.archive.settings import ArchiveSettings
from gateway_core.archive.writer_child import Report, settings_json
from gateway_core.contracts.history_views import PruneAnswer
from gateway_core.metrics import ArchiveMetrics

log = logging.getLogger("corral.archive")

# -c, not -m: run as __main__, the child's messages would name their classes __main__.Report.
CHILD_MAIN = "from gateway_core.archive.writer_child import main; main()"
SHIP_ROWS = 200  # rows per message: one pickling on the loop takes about 0.1 ms
RESTART_AFTER_S = 1.0


class ProcessWriter:
    def __init__(
        self,
        settings: ArchiveSettings,
        queue: RecordQueue,
        readers: ReaderPool,
        metrics: ArchiveMetrics,
        dropped: Callable[[], int],
        on_change: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._queue = queue
        self._readers = readers
        self._metrics = metrics
        self._dropped = dropped
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._spawned = asyncio.Event()
        self._tokens = itertools.count(1)
        self._flushes: dict[int, tuple[Future[None], int]] = {}  # token -> (future, child generation)
        self._prunes: dict[int, Future[PruneAnswer]] = {}
        self._waiting_flushes: list[Future[None]] = []  # asked for; sent once what was queued before is shipped
        self._waiting_prunes: list[tuple[str, str, Future[PruneAnswer]]] = []
        self._child: asyncio.subprocess.Process | None = None
        self._generation = 0
        self._shipped_rows = self._shipped_bytes = 0  # to the current child
        self._child_done_rows = self._child_done_bytes = 0  # what the current child reported as settled
        self._task: asyncio.Task[None] | None = None
        self._readers_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._within_s = 0.0
        self.finished: Future[None] = Future()
        self.written = 0
        self.discarded = 0
        self.failing = False
        self.last_error: str | None = None
        self.settled_drops = 0
        self._drops_seen = 0
        self._written_before = 0  # rows the children before this one wrote
        self._discarded_before = 0

    # -- ArchiveWriter's surface (SqliteArchive calls these on the loop) --------------------------------

    def start(self) -> None:
        """Called on the event loop (SqliteArchive.start): the child starts, and the shipping task with it."""
        self._task = asyncio.ensure_future(self._run())

    @property
    def started(self) -> bool:
        return self._task is not None

    async def ready(self) -> None:
        """Once the first writer process has started (or the task that starts it has failed)."""
        assert self._task is not None
        waiting = asyncio.ensure_future(self._spawned.wait())
        await asyncio.wait({waiting, self._task}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if self._task.done():
            self._task.result()  # raises why it could not start

    def wake(self) -> None:
        self._wake.set()

    def when_written(self, accepted: int) -> Future[None]:
        """Done once everything queued so far is written: sent after it, answered by the child in order."""
        future: Future[None] = Future()
        self._waiting_flushes.append(future)
        self._wake.set()
        return future

    def prune_later(self, before: str, current: str) -> Future[PruneAnswer]:
        future: Future[PruneAnswer] = Future()
        self._waiting_prunes.append((before, current, future))
        self._wake.set()
        return future

    def stop(self, within_s: float) -> Future[None]:
        self._within_s = within_s
        self._stopping = True
        self._wake.set()
        return self.finished

    # -- shipping (a task on the loop) ------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._spawn()
            while not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.flush_interval_s)
                self._wake.clear()
                await self._ship()
            await self._ship()
            await self._send(("stop", self._within_s))
            child = self._child
            if child is not None:
                try:
                    await asyncio.wait_for(child.wait(), self._within_s + 2.0)
                except TimeoutError:
                    log.error("archive: the writer process did not stop in time; stopping it")
                    child.kill()
                    await child.wait()
            await asyncio.gather(*self._readers_tasks, return_exceptions=True)
            left = self._queue.depth
            if left:
                log.error("archive: %d requests could not be written before shutdown; they are not archived", left)
        finally:
            for future, _ in self._flushes.values():
                _fail(future, "the archive closed before this was written")
            for pruned in self._prunes.values():
                _fail(pruned, "the archive closed before this could run")
            self._flushes, self._prunes = {}, {}
            self.finished.set_result(None)

    async def _ship(self) -> None:
        if self._child is None:  # between a dead child and its replacement: rows wait in the (bounded) queue
            return
        records = self._queue.take()
        for start in range(0, len(records), SHIP_ROWS):
            part = records[start : start + SHIP_ROWS]
            # As tuples: pickling a struct goes through its __reduce__, four times the cost of its fields' tuple.
            if await self._send(("records", [(astuple(record), size) for record, size in part])):
                self._shipped_rows += len(part)
                self._shipped_bytes += sum(size for _, size in part)
            else:  # no child to take them: they are lost, and counted
                self._lose(len(part), sum(size for _, size in part), "no writer process was running")
        flushes, self._waiting_flushes = self._waiting_flushes, []
        prunes, self._waiting_prunes = self._waiting_prunes, []
        for future in flushes:
            token = next(self._tokens)
            self._flushes[token] = (future, self._generation)
            await self._send(("flush", token))
        for before, current, pruned in prunes:
            token = next(self._tokens)
            self._prunes[token] = pruned
            await self._send(("prune", token, before, current))

    async def _send(self, message: tuple[Any, ...]) -> bool:
        child = self._child
        if child is None or child.stdin is None or child.stdin.is_closing():
            return False
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            child.stdin.write(LENGTH.pack(len(data)) + data)
            await child.stdin.drain()  # waits (without blocking the loop) while the child is behind
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    # -- the child and its reports ----------------------------------------------------------------------

    async def _spawn(self) -> None:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD_MAIN,
            settings_json(self._settings),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._generation += 1
        self._child = child
        self._shipped_rows = self._shipped_bytes = self._child_done_rows = self._child_done_bytes = 0
        reader = asyncio.ensure_future(self._read_reports(child, self._generation))
        self._readers_tasks.add(reader)
        reader.add_done_callback(self._readers_tasks.discard)
        self._spawned.set()

    async def _read_reports(self, child: asyncio.subprocess.Process, generation: int) -> None:
        assert child.stdout is not None
        stopped = False
        while True:
            try:
                header = await child.stdout.readexactly(LENGTH.size)
                message = pickle.loads(await child.stdout.readexactly(LENGTH.unpack(header)[0]))
            except asyncio.IncompleteReadError:
                break
            except Exception:  # a message this side cannot read: a bug, reported; the next one may be fine
                log.exception("archive: a report from the writer process could not be read")
                continue
            kind = message[0]
            if kind == "status":
                self._apply(message[1])
            elif kind == "flushed":
                self._answer_flush(message[1], message[2])
            elif kind == "pruned":
                self._answer_prune(message[1], message[2], message[3])
            elif kind == "stopped":
                stopped = True
        code = await child.wait()
        if stopped or self._stopping:
            return
        await self._child_died(code, generation)

    def _apply(self, report: Report) -> None:
        self._queue.settle(report.done_rows - self._child_done_rows, report.done_bytes - self._child_done_bytes)
        self._child_done_rows, self._child_done_bytes = report.done_rows, report.done_bytes
        self.written = self._written_before + report.written
        self.discarded = self._discarded_before + report.discarded
        self.failing, self.last_error = report.failing, report.last_error or self.last_error
        self._metrics.rows_written(report.rows_written)
        self._metrics.rows_dropped(report.rows_dropped)
        for _ in range(report.write_errors):
            self._metrics.write_failed()
        for seconds in report.batch_seconds:
            self._metrics.batch_written(seconds)
        if not report.failing:
            dropped = self._dropped()
            self.settled_drops, self._drops_seen = self._drops_seen, dropped
        self._on_change()

    def _answer_flush(self, token: int, error: str | None) -> None:
        entry = self._flushes.pop(token, None)
        if entry is None:
            return
        if error is None:
            entry[0].set_result(None)
        else:
            _fail(entry[0], error)

    def _answer_prune(self, token: int, answer: PruneAnswer | None, error: str | None) -> None:
        future = self._prunes.pop(token, None)
        if future is None:
            return
        if answer is not None:
            self._readers.forget(answer["months"])  # this process's read connections to what was moved
            future.set_result(answer)
        else:
            _fail(future, error or "pruning failed")

    async def _child_died(self, code: int, generation: int) -> None:
        lost_rows = self._shipped_rows - self._child_done_rows
        lost_bytes = self._shipped_bytes - self._child_done_bytes
        self._written_before, self._discarded_before = self.written, self.discarded
        self.failing = True
        self.last_error = f"the archive's writer process exited with code {code}"
        log.error(
            "archive: the writer process exited (code %s) holding %d requests, which are not archived; "
            "starting another in %.0f s",
            code,
            lost_rows,
            RESTART_AFTER_S,
        )
        self._child = None
        self._lose(lost_rows, lost_bytes, "the writer process died")
        for token, (future, gen) in list(self._flushes.items()):
            if gen == generation:
                del self._flushes[token]
                _fail(future, self.last_error)
        prunes, self._prunes = self._prunes, {}
        for pruned in prunes.values():
            _fail(pruned, self.last_error)
        self._on_change()
        await asyncio.sleep(RESTART_AFTER_S)  # a crash loop must not spin
        if not self._stopping:
            await self._spawn()

    def _lose(self, rows: int, size: int, why: str) -> None:
        if rows <= 0:
            return
        self._queue.settle(rows, size)
        self._discarded_before += rows
        self.discarded += rows
        self._metrics.rows_dropped(rows)
        log.error("archive: %d requests are not archived: %s", rows, why)


def _fail(future: Future[Any], message: str) -> None:
    if not future.done():
        future.set_exception(RuntimeError(message))
