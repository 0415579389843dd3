"""Plain-text output for the `corral` CLI: aligned tables and JSON. Values are written by console.format."""

from __future__ import annotations

import json
import os
import sys
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
