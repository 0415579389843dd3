"""Plain-text output for the `corral` CLI: aligned tables, JSON, and short human values."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

BOLD, RESET = "\x1b[1m", "\x1b[0m"


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], stream: TextIO | None = None) -> str:
    """Columns padded to their widest cell, two spaces apart; the header is bold only on a terminal."""
    stream = stream or sys.stdout
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)).rstrip()

    head = line(list(headers))
    if use_colour(stream):
        head = f"{BOLD}{head}{RESET}"
    return "\n".join([head, *(line(row) for row in cells)])


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def ago(timestamp: float | None, now: float | None = None) -> str:
    if timestamp is None:
        return "never"
    return f"{duration(max(0.0, (now or time.time()) - timestamp))} ago"


def until(timestamp: float | None, now: float | None = None) -> str:
    if timestamp is None:
        return "never"
    left = timestamp - (now or time.time())
    return f"in {duration(left)}" if left > 0 else f"{duration(-left)} ago"


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
