"""The month files: their names, which exist, and which ones a time range touches."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway_core.contracts.instants import MONTH, month_of

SUFFIX = ".sqlite"
OLD_DIRECTORY = "old"  # where pruned months are moved (settings.pruned == "move")


def month_path(directory: Path, month: str) -> Path:
    return directory / f"{month}{SUFFIX}"


def list_months(directory: Path) -> list[str]:
    """The months that have a file in `directory`, oldest first."""
    try:
        names = [entry.name for entry in directory.iterdir()]
    except FileNotFoundError:
        return []
    return sorted(
        name[:7] for name in names if len(name) == 7 + len(SUFFIX) and name.endswith(SUFFIX) and MONTH.match(name[:7])
    )


def months_in_range(months: list[str], since: float | None, until: float | None) -> list[str]:
    """The months of `months` that can hold a request started in [since, until)."""
    first = month_of(since) if since is not None else None
    last = month_of(until) if until is not None else None
    return [m for m in months if (first is None or m >= first) and (last is None or m <= last)]


def month_add(month: str, count: int) -> str:
    """The month `count` months after `month` (before, when negative)."""
    year, number = int(month[:4]), int(month[5:7])
    index = year * 12 + (number - 1) + count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_start(month: str) -> float:
    return datetime(int(month[:4]), int(month[5:7]), 1, tzinfo=UTC).timestamp()
