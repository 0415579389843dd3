"""SqliteArchive: the Archive interface over one SQLite file per UTC month, <directory>/YYYY-MM.sqlite.

`record` is the request path's only call: a bounded queue append, on the event loop. The writer (writer.py's
ArchiveWriter, in a thread, or in a process of its own: writer_process.py, as corral-core runs it) does everything
else that writes; reads run in worker threads on read-only connections (readers.py). State changes (starts or
stops dropping, starts or stops failing) reach `on_status` on the event loop, at most once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal

from prometheus_client import CollectorRegistry

from gateway_core.archive import export, search, usage
from gateway_core.archive.capture import StreamCapture
from gateway_core.archive.interface import ExportFormat, HistoryQuery, UsageQuery
from gateway_core.archive.months import list_months
from gateway_core.archive.readers import ReaderPool
from gateway_core.archive.record_queue import RecordQueue
from gateway_core.archive.settings import ArchiveSettings
from gateway_core.archive.writer import BATCH_ROWS, ArchiveWriter
from gateway_core.archive.writer_process import ProcessWriter
from gateway_core.clock import SYSTEM_CLOCK, Clock
from gateway_core.contracts.archive import CaptureMode, RequestRecord
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.history_views import (
    ArchiveStatusView,
    HistoryDetailView,
    HistoryPage,
    PruneAnswer,
    UsageView,
)
from gateway_core.contracts.instants import InstantError, check_month, month_of
from gateway_core.metrics import ArchiveMetrics

log = logging.getLogger("corral.archive")

DROP_LOG_EVERY_S = 10.0
STATUS_EVERY_S = 1.0  # on_status at most this often
CLOSE_WITHIN_S = 10.0  # SIGTERM's bound: what is not written by then is logged as lost
FLUSH_TIMEOUT_S = 30.0

State = Literal["ok", "off", "failing", "dropping"]


class SqliteArchive:
    def __init__(
        self,
        settings: ArchiveSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        metrics: ArchiveMetrics | None = None,
        on_status: Callable[[ArchiveStatusView], None] | None = None,
    ) -> None:
        if settings.retain_months is not None and settings.retain_months < 1:
            raise ValueError(f"retain_months is {settings.retain_months}: keep at least 1 month (the current one)")
        if settings.body_cap < 0 or settings.queue_rows < 1 or settings.queue_bytes < 1:
            raise ValueError("body_cap must be 0 or more, queue_rows and queue_bytes 1 or more")
        self.settings = settings
        self._clock = clock
        self._metrics = metrics or ArchiveMetrics(CollectorRegistry())
        self._on_status = on_status
        self._queue = RecordQueue(settings.queue_rows, settings.queue_bytes)
        self._readers = ReaderPool(settings.directory)
        self._writer: ArchiveWriter | ProcessWriter
        if settings.writer == "process":
            self._writer = ProcessWriter(
                settings, self._queue, self._readers, self._metrics, lambda: self._dropped, self._state_changed
            )
        else:
            self._writer = ArchiveWriter(
                settings, self._queue, self._readers, clock, self._metrics, lambda: self._dropped, self._state_changed
            )
        self._metrics.watch_queue(lambda: self._queue.depth)
        self._closed = False
        self._dropped = 0  # rows refused at the queue; written on the loop only
        self._drops_unlogged = 0
        self._drop_logged_at = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reported: State = "ok"
        self._reported_at = float("-inf")
        self._report_scheduled = False

    # -- the request path (on the event loop) -----------------------------------------------------------

    def record(self, record: RequestRecord) -> None:
        """Queue a finished request for the writer. Never blocks, never raises: a full queue drops it (counted)."""
        try:
            if record.capture == "off":
                return
            size = 0
            if record.request_body is not None:
                size = len(record.request_body)
            if record.response_body is not None:
                size += len(record.response_body)
            frames = record.response_frames
            if frames is not None:
                size += frames.retained_bytes if isinstance(frames, StreamCapture) else self.settings.body_cap
            if self._closed or not self._queue.offer(record, size):
                self._drop()
            elif self._queue.waiting() >= BATCH_ROWS:
                self._writer.wake()
        except Exception:  # a bug here must never fail the request that is being recorded
            log.exception("archive: request %s could not be queued", getattr(record, "id", "?"))

    def capture_for(self, key_capture: CaptureMode | None) -> CaptureMode:
        return self.settings.capture if key_capture is None else key_capture

    def _drop(self) -> None:
        first = self._state() != "dropping"
        self._dropped += 1
        self._drops_unlogged += 1
        self._metrics.rows_dropped(1)
        now = time.monotonic()
        if now - self._drop_logged_at >= DROP_LOG_EVERY_S:
            log.warning(
                "archive: %d requests not archived in the last %.0f s: %s (%d rows queued, at most %d)",
                self._drops_unlogged,
                min(now - self._drop_logged_at, DROP_LOG_EVERY_S),
                "the archive is closed" if self._closed else "the writer is behind",
                self._queue.depth,
                self.settings.queue_rows,
            )
            self._drop_logged_at, self._drops_unlogged = now, 0
        if first:
            self._report()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.settings.directory.mkdir, parents=True, exist_ok=True)
        self._writer.start()
        if isinstance(self._writer, ProcessWriter):
            await self._writer.ready()

    async def close(self) -> None:
        """Stop accepting, write everything queued, checkpoint and close, within CLOSE_WITHIN_S."""
        if self._closed:
            return
        self._closed = True
        if self._writer.started:
            finished = asyncio.wrap_future(self._writer.stop(CLOSE_WITHIN_S - 2.5))  # 2.5 s for a busy-timeout
            try:
                await asyncio.wait_for(asyncio.shield(finished), CLOSE_WITHIN_S)
            except TimeoutError:
                log.error(
                    "archive: the writer did not finish within %.0f s; %d requests queued are not archived",
                    CLOSE_WITHIN_S,
                    self._queue.depth,
                )
        elif self._queue.depth:
            log.error("archive: closed before it started; %d requests queued are not archived", self._queue.depth)
        await asyncio.to_thread(self._readers.close)

    async def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Return once everything recorded so far is on disk (tests, and the daemon's own checks)."""
        if not self._writer.started:
            raise RuntimeError("the archive is not started: call start() first")
        if self._writer.finished.done():
            if self._queue.depth:
                raise RuntimeError(f"the archive is closed with {self._queue.depth} requests not written")
            return
        done = asyncio.wrap_future(self._writer.when_written(self._queue.accepted))
        try:
            await asyncio.wait_for(done, timeout_s)
        except TimeoutError:
            raise TimeoutError(
                f"the archive did not write what was queued within {timeout_s:g} s "
                f"({self._queue.depth} rows waiting; last error: {self._writer.last_error})"
            ) from None

    # -- status ---------------------------------------------------------------------------------------

    def _state(self) -> State:
        if self._writer.failing:
            return "failing"
        if self._dropped + self._writer.discarded > self._writer.settled_drops:
            return "dropping"
        return "off" if self.settings.capture == "off" else "ok"

    def status(self) -> ArchiveStatusView:
        return {
            "state": self._state(),
            "capture": self.settings.capture,
            "directory": str(self.settings.directory),
            "queued": self._queue.depth,
            "written": self._writer.written,
            "dropped": self._dropped + self._writer.discarded,
            "last_error": self._writer.last_error,
            "retain_months": self.settings.retain_months,
            "months": list_months(self.settings.directory),
        }

    def _state_changed(self) -> None:
        """The writer's hook after each cycle (its thread): report on the loop if the state moved."""
        loop = self._loop
        if loop is None or self._on_status is None or self._state() == self._reported:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to tell
            loop.call_soon_threadsafe(self._report)

    def _report(self) -> None:
        """On the loop: tell on_status about a new state, at most once every STATUS_EVERY_S."""
        loop = self._loop
        if self._on_status is None or loop is None:
            return
        state = self._state()
        if state == self._reported:
            return
        wait = self._reported_at + STATUS_EVERY_S - loop.time()
        if wait > 0:
            if not self._report_scheduled:
                self._report_scheduled = True
                loop.call_later(wait, self._scheduled_report)
            return
        self._reported, self._reported_at = state, loop.time()
        self._on_status(self.status())

    def _scheduled_report(self) -> None:
        self._report_scheduled = False
        self._report()

    # -- reading (worker threads) ---------------------------------------------------------------------

    async def search(self, query: HistoryQuery) -> HistoryPage:
        return await asyncio.to_thread(search.search, self._readers, self.settings.directory, query)

    async def get(self, request_id: str) -> HistoryDetailView | None:
        return await asyncio.to_thread(search.get, self._readers, self.settings.directory, request_id)

    async def usage(self, query: UsageQuery) -> UsageView:
        if query.until <= 0:  # "until" left out: up to now
            query = UsageQuery(query.by, query.since, self._clock.time(), query.bucket)
        return await asyncio.to_thread(usage.usage, self._readers, self.settings.directory, query)

    def export(self, month: str, fmt: ExportFormat) -> AsyncIterator[bytes]:
        """Raises the client's error (bad month or format, no such month) here, before the first piece."""
        month = export.checked_export(self.settings.directory, month, fmt)  # one stat: no need for a thread
        return export.export_month(self._readers, month, fmt)

    # -- retention ------------------------------------------------------------------------------------

    async def prune(self, before: str) -> PruneAnswer:
        try:
            before = check_month(before)
        except InstantError as error:
            raise GatewayError(400, str(error), param="before", code="invalid_month") from None
        current = month_of(self._clock.time())
        if before > current:
            raise GatewayError(
                400,
                f"pruning before {before} would remove {current}, the month being written; "
                f"prune before {current} at the latest",
                param="before",
                code="current_month",
            )
        if not self._writer.started:
            raise RuntimeError("the archive is not started: call start() first")
        return await asyncio.wrap_future(self._writer.prune_later(before, current))
