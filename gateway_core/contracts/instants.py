"""Points in time as people type them, for history and usage filters: the CLI and the admin API read the same.

"7d", "36h", "90m" (that long before now), "2026-11-03" (midnight UTC), "2026-11-03T14:00" or any ISO 8601
time (UTC unless it says otherwise), "now", or Unix seconds.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class InstantError(ValueError):
    """A time that could not be read; the message says what forms are accepted."""


def parse_instant(text: str, now: float) -> float:
    """Unix seconds for `text`; raises InstantError naming what was wrong."""
    value = text.strip()
    if value == "now":
        return now
    if match := _RELATIVE.match(value):
        return now - float(match.group(1)) * _SECONDS[match.group(2)]
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        raise InstantError(f"'{text}' is not a time: Unix seconds must be a finite number, 0 or more")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InstantError(
            f"'{text}' is not a time: use a duration before now (7d, 36h, 90m), a date (2026-11-03), "
            "an ISO 8601 time (2026-11-03T14:00Z) or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def month_of(seconds: float) -> str:
    """The "YYYY-MM" (UTC) a moment falls in: the archive file a request started in."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m")


def check_month(text: str) -> str:
    """`text` if it is a "YYYY-MM" month; raises InstantError otherwise."""
    if not MONTH.match(text.strip()):
        raise InstantError(f"'{text}' is not a month: use YYYY-MM, for example 2026-11")
    return text.strip()
