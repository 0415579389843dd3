"""What the operator configures about the archive: where it lives, what it keeps, and how much it may queue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway_core.contracts.archive import CaptureMode

PrunedAction = Literal["move", "delete"]
WriterKind = Literal["thread", "process"]


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """corral-core's archive flags, read once at start (the CLI builds this)."""

    directory: Path  # <data-dir>/archive: one YYYY-MM.sqlite per UTC month
    capture: CaptureMode = "full"  # the gateway's mode; a key may override it
    body_cap: int = 64 * 1024  # bytes kept of each body (UTF-8), the rest cut and flagged
    redact: tuple[str, ...] = ()  # JSON paths whose values are stored as "[redacted]": "user", "messages.*.content"
    queue_rows: int = 20_000  # rows waiting for the writer, at most; past it a row is dropped (and counted)
    queue_bytes: int = 256 * 1024 * 1024  # the bodies of those rows, at most
    flush_interval_s: float = 0.25  # how often the writer commits what is queued: the bound on a kill -9's loss
    retain_months: int | None = None  # keep this many months, the current one included; None keeps everything
    pruned: PrunedAction = "move"  # a pruned month's file is moved to archive/old/, or deleted
    # Where the writer runs: a process of its own (corral-core's default: its CPU never takes the event loop's
    # GIL), or a thread of this one (in-process use and tests, which drive it with an injected clock).
    writer: WriterKind = "thread"
