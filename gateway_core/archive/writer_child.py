"""The archive's writer process, started by corral-core (writer_process.py) with its settings as JSON.

It runs the same `ArchiveWriter` the thread mode runs, fed from its stdin instead of the daemon's queue, so its
CPU (preparing rows, SQLite, the text index, rollups) never takes the event loop's GIL. It reports to its stdout
after every writer cycle. Signals meant for the daemon (SIGTERM from systemd, ctrl-C in a terminal) are ignored:
it stops when corral-core says so, or when corral-core is gone (stdin closes), after writing everything it was
sent, so a `kill -9` of the daemon loses only what the daemon had not sent yet.

Messages in (pipe_frames): ("records", [(a RequestRecord's field values, size), ...]), ("flush", token),
("prune", token, before, current), ("stop", within_s). Out: ("status", Report), ("flushed", token, error),
("pruned", token, answer, error), ("stopped",).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_core.archive.pipe_frames import FrameWriter, receive
from gateway_core.archive.readers import ReaderPool
from gateway_core.archive.record_queue import RecordQueue
from gateway_core.archive.settings import ArchiveSettings
from gateway_core.archive.writer import BATCH_ROWS, ArchiveWriter
from gateway_core.clock import SYSTEM_CLOCK
from gateway_core.contracts.archive import RequestRecord

log = logging.getLogger("corral.archive")

WRITER_NICENESS = 19
CLOSE_WITHIN_S = 7.5  # when the daemon vanished: as long as a SIGTERM's close would have had
UNBOUNDED = 1 << 62  # the daemon's queue holds the bounds; this one only passes rows on
RECORD_FIELDS = RequestRecord.__struct_fields__  # the order of the tuples the daemon sends


@dataclass
class Report:
    """The writer's state after a cycle, and the metrics it recorded since the last report."""

    written: int
    done_rows: int  # rows sent here that are written or given up: the daemon's queue settles them
    done_bytes: int
    discarded: int
    failing: bool
    last_error: str | None
    rows_written: int = 0
    rows_dropped: int = 0
    write_errors: int = 0
    batch_seconds: list[float] = field(default_factory=list)


class MetricsTally:
    """ArchiveMetrics' calls, counted here and sent with each report for the daemon's own metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows_written = self._rows_dropped = self._write_errors = 0
        self._batches: list[float] = []

    def rows_written(self, count: int) -> None:
        with self._lock:
            self._rows_written += count

    def rows_dropped(self, count: int) -> None:
        with self._lock:
            self._rows_dropped += count

    def write_failed(self) -> None:
        with self._lock:
            self._write_errors += 1

    def batch_written(self, seconds: float) -> None:
        with self._lock:
            self._batches.append(seconds)

    def watch_queue(self, depth: Any) -> None:
        return None  # the daemon's queue is the one scraped

    def drain_into(self, report: Report) -> Report:
        with self._lock:
            report.rows_written, self._rows_written = self._rows_written, 0
            report.rows_dropped, self._rows_dropped = self._rows_dropped, 0
            report.write_errors, self._write_errors = self._write_errors, 0
            report.batch_seconds, self._batches = self._batches, []
        return report


def settings_json(settings: ArchiveSettings) -> str:
    return json.dumps(
        {
            "directory": str(settings.directory),
            "capture": settings.capture,
            "body_cap": settings.body_cap,
            "redact": list(settings.redact),
            "queue_rows": settings.queue_rows,
            "queue_bytes": settings.queue_bytes,
            "flush_interval_s": settings.flush_interval_s,
            "retain_months": settings.retain_months,
            "pruned": settings.pruned,
        }
    )


def settings_from_json(text: str) -> ArchiveSettings:
    fields = json.loads(text)
    fields["directory"] = Path(fields["directory"])
    fields["redact"] = tuple(fields["redact"])
    return ArchiveSettings(**fields, writer="thread")


class WriterChild:
    def __init__(self, settings: ArchiveSettings, out: FrameWriter) -> None:
        self._out = out
        self._queue = RecordQueue(UNBOUNDED, UNBOUNDED)
        self._metrics = MetricsTally()
        self._writer = ArchiveWriter(
            settings,
            self._queue,
            ReaderPool(settings.directory),
            SYSTEM_CLOCK,
            self._metrics,
            lambda: 0,
            self._report,
            share_gil=False,  # no event loop in this process to hand it to
        )

    def run(self, stream: Any) -> None:
        self._writer.start()
        within = CLOSE_WITHIN_S
        while True:
            try:
                message = receive(stream)
            except EOFError:
                log.warning("archive writer: corral-core is gone; writing what it sent, then stopping")
                break
            kind = message[0]
            if kind == "records":
                for values, size in message[1]:
                    self._queue.offer(RequestRecord(**dict(zip(RECORD_FIELDS, values, strict=True))), size)
                if self._queue.waiting() >= BATCH_ROWS:
                    self._writer.wake()
            elif kind == "flush":
                self._reply(self._writer.when_written(self._queue.accepted), "flushed", message[1])
            elif kind == "prune":
                _, token, before, current = message
                self._reply(self._writer.prune_later(before, current), "pruned", token)
            elif kind == "stop":
                within = message[1]
                break
        self._writer.stop(within).result()
        self._report()
        with contextlib.suppress(BrokenPipeError, ValueError):  # nobody is left to tell
            self._out.send(("stopped",))

    def _reply(self, future: Future[Any], kind: str, token: int) -> None:
        def send(done: Future[Any]) -> None:
            error = done.exception()
            if kind == "flushed":
                self._report()  # first: the daemon's counts must include what this flush waited for
                self._out.send((kind, token, None if error is None else str(error)))
            else:
                self._out.send((kind, token, None if error is not None else done.result(), _describe(error)))

        future.add_done_callback(send)

    def _report(self) -> None:
        """After every writer cycle (the writer's thread): where it stands."""
        writer = self._writer
        report = Report(
            written=writer.written,
            done_rows=self._queue.done,
            done_bytes=self._queue.done_bytes,
            discarded=writer.discarded,
            failing=writer.failing,
            last_error=writer.last_error,
        )
        with contextlib.suppress(BrokenPipeError, ValueError):  # corral-core is gone; its rows are still written
            self._out.send(("status", self._metrics.drain_into(report)))


def _describe(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def background() -> None:
    """The lowest CPU priority (nice 19): when the CPUs are short, the gateway's requests come first. Measured at
    the gateway's best rate on 2 cores, the archive then cost it 3-4 %, against 5-7 % at nice 10. Not SCHED_IDLE,
    which measured no better there and can starve the writer on a busy box for good; a writer that falls behind
    fills its bounded queue, and the drops say so."""
    os.nice(WRITER_NICENESS)


def main() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)  # corral-core stops this process itself, after its own drain
    background()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from_json(sys.argv[1])
    WriterChild(settings, FrameWriter(sys.stdout.buffer)).run(sys.stdin.buffer)


if __name__ == "__main__":
    main()
