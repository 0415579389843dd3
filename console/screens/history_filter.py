"""The History screen's filter line, read into the same filters as `corral history`'s options.

Plain words are the full-text search; `key:`, `model:`, `provider:`, `status:`, `since:` and `until:` tokens set
the other filters (`key:"my app"` quotes a value with spaces). Times are read here, as the CLI reads them
(gateway_core/contracts/instants.py), so a typo shows at once instead of as the daemon's 400.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_core.contracts.instants import InstantError, parse_instant

if TYPE_CHECKING:
    from gateway_core.client_history import HistoryCalls
    from gateway_core.contracts.history_views import HistoryPage

FIELDS = ("key", "model", "provider", "status", "since", "until")
# What the archive's status filter takes: an exact code, a class, or ok/error.
STATUS = re.compile(r"^([1-5]\d\d|[1-5]xx|ok|error)$")


class FilterError(ValueError):
    """A filter line that cannot be read; the message says which part and what is accepted."""


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What GET /history filters on. Times are Unix seconds, read once, so every page of a search sees the same
    range even when it was typed as "7d"."""

    key: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None

    def fetch(self, client: HistoryCalls, *, limit: int, cursor: str | None = None) -> Awaitable[HistoryPage]:
        """One page of the archived requests these filters match, newest first."""
        return client.history(
            key=self.key,
            model=self.model,
            provider=self.provider,
            status=self.status,
            since=self.since,
            until=self.until,
            text=self.text,
            limit=limit,
            cursor=cursor,
        )


def check_status(text: str) -> str:
    value = text.strip().lower()
    if not STATUS.match(value):
        raise FilterError(f"'{text}' is not a status filter: use a code (200, 429), a class (4xx, 5xx), ok or error")
    return value


def parse_filter(line: str, now: float) -> HistoryFilter:
    """Read a filter line; raises FilterError naming the part it could not read."""
    try:
        tokens = shlex.split(line)
    except ValueError:
        raise FilterError("a quote is not closed: close it, or remove it") from None
    values: dict[str, str] = {}
    words: list[str] = []
    for token in tokens:
        name, colon, value = token.partition(":")
        if not colon or name.lower() not in FIELDS:
            words.append(token)
            continue
        if not value:
            raise FilterError(f"'{token}' has no value: write {name}:VALUE")
        values[name.lower()] = value
    try:
        since = parse_instant(values["since"], now) if "since" in values else None
        until = parse_instant(values["until"], now) if "until" in values else None
    except InstantError as error:
        raise FilterError(str(error)) from None
    if since is not None and until is not None and since > until:
        raise FilterError("since: is after until: swap them")
    return HistoryFilter(
        key=values.get("key"),
        model=values.get("model"),
        provider=values.get("provider"),
        status=check_status(values["status"]) if "status" in values else None,
        since=since,
        until=until,
        text=" ".join(words) or None,
    )
