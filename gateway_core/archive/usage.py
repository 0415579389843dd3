"""Usage over time, read from the rollups only (never the rows): grouped by key, model or provider, per hour or day.

The range is widened to whole hours. With day buckets, the whole UTC days inside it are read from the daily
rollups and the hours at either end from the hourly ones, so 90 days cost about as much as a few days of hours.
Points are sparse: a bucket with no requests is left out. Percentiles come from the merged histograms
(histogram.py: within 4.9%).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_core.archive import histogram
from gateway_core.archive.interface import UsageQuery
from gateway_core.archive.months import list_months, months_in_range
from gateway_core.archive.readers import ReaderPool
from gateway_core.archive.rollups import DAY_S, HISTOGRAMS, HOUR_S, MEASURES
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.history_views import ERROR_CLASSES, UsagePoint, UsageSeries, UsageView

_DIMENSIONS = {"key": "key_id", "model": "model", "provider": "provider"}
_NO_GROUP = {"key": "(no key)", "model": "(no model)", "provider": "(no provider)"}
_M = {name: index for index, name in enumerate(MEASURES)}
_LATENCY, _TTFT = len(MEASURES), len(MEASURES) + 1


@dataclass(slots=True)
class _Sums:
    measures: list[float] = field(default_factory=lambda: [0] * len(MEASURES))
    latency: list[int] = field(default_factory=lambda: [0] * histogram.BUCKETS)
    ttft: list[int] = field(default_factory=lambda: [0] * histogram.BUCKETS)

    def add(self, row: tuple[Any, ...], first: int) -> None:
        measures = self.measures
        for offset in range(len(MEASURES)):
            measures[offset] += row[first + offset]
        histogram.add_into(self.latency, row[first + _LATENCY])
        histogram.add_into(self.ttft, row[first + _TTFT])

    def merge(self, other: _Sums) -> None:
        for index, value in enumerate(other.measures):
            self.measures[index] += value
        for counts, more in ((self.latency, other.latency), (self.ttft, other.ttft)):
            for index, count in enumerate(more):
                if count:
                    counts[index] += count

    def point(self, bucket_start: float) -> UsagePoint:
        m = self.measures
        generation_s = m[_M["generation_s"]]
        return {
            "bucket_start": bucket_start,
            "requests": int(m[_M["requests"]]),
            "errors": int(m[_M["errors"]]),
            "errors_by_class": {name: int(m[_M[f"errors_{name}"]]) for name in ERROR_CLASSES},
            "prompt_tokens": int(m[_M["prompt_tokens"]]),
            "completion_tokens": int(m[_M["completion_tokens"]]),
            "latency_p50_s": histogram.percentile(self.latency, 0.5),
            "latency_p95_s": histogram.percentile(self.latency, 0.95),
            "ttft_p50_s": histogram.percentile(self.ttft, 0.5),
            "ttft_p95_s": histogram.percentile(self.ttft, 0.95),
            "tokens_per_s": m[_M["generation_tokens"]] / generation_s if generation_s > 0 else None,
            "gpu_seconds": m[_M["gpu_seconds"]] if m[_M["gpu_requests"]] else None,
            "energy_joules": m[_M["energy_joules"]] if m[_M["energy_requests"]] else None,
        }


@dataclass(slots=True)
class _Series:
    name: str | None = None
    named_at: float = -math.inf
    buckets: dict[float, _Sums] = field(default_factory=dict)


def usage(pool: ReaderPool, directory: Path, query: UsageQuery) -> UsageView:
    if query.by not in _DIMENSIONS:
        raise GatewayError(400, f"usage by '{query.by}': use key, model or provider", param="by", code="invalid_by")
    if query.bucket not in ("hour", "day"):
        raise GatewayError(400, f"bucket '{query.bucket}': use hour or day", param="bucket", code="invalid_bucket")
    start = math.floor(query.since / HOUR_S) * HOUR_S
    end = math.ceil(query.until / HOUR_S) * HOUR_S
    width = DAY_S if query.bucket == "day" else HOUR_S
    column = _DIMENSIONS[query.by]
    series: dict[str, _Series] = {}
    if end > start:
        for month in months_in_range(list_months(directory), start, end - 1):
            with pool.reading(month) as connection:
                if connection is not None:
                    for period, row in _rows(connection, column, start, end, query.bucket == "day"):
                        _add(series, row, period, width)
    return {
        "by": query.by,
        "bucket": query.bucket,
        "since": query.since,
        "until": query.until,
        "series": _answer(series, query),
    }


def _rows(
    connection: sqlite3.Connection, column: str, start: int, end: int, by_day: bool
) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """(period start, row) for every rollup row in [start, end): whole days from the daily table if by_day."""
    ranges: list[tuple[str, str, int, int]] = []
    first_day, last_day = math.ceil(start / DAY_S) * DAY_S, (end // DAY_S) * DAY_S
    if by_day and first_day < last_day:
        ranges = [
            ("rollups", "hour_start", start, first_day),
            ("daily_rollups", "day_start", first_day, last_day),
            ("rollups", "hour_start", last_day, end),
        ]
    else:
        ranges = [("rollups", "hour_start", start, end)]
    measures = ", ".join((*MEASURES, *HISTOGRAMS))
    for table, period, low, high in ranges:
        if low >= high:
            continue
        sql = f"SELECT {period}, {column}, key_name, {measures} FROM {table} WHERE {period} >= ? AND {period} < ?"
        for row in connection.execute(sql, (low, high)):
            yield row[0], row


def _add(series: dict[str, _Series], row: tuple[Any, ...], period: int, width: int) -> None:
    group = row[1]
    entry = series.get(group)
    if entry is None:
        entry = series[group] = _Series()
    if row[2] is not None and period >= entry.named_at:  # the key's name as it was last seen
        entry.name, entry.named_at = row[2], period
    bucket = float(period // width * width)
    sums = entry.buckets.get(bucket)
    if sums is None:
        sums = entry.buckets[bucket] = _Sums()
    sums.add(row, 3)


def _answer(series: dict[str, _Series], query: UsageQuery) -> list[UsageSeries]:
    answer: list[UsageSeries] = []
    for group, entry in series.items():
        total = _Sums()
        for sums in entry.buckets.values():
            total.merge(sums)
        if query.by == "key":
            name, group_id = entry.name or group or _NO_GROUP["key"], group or None
        else:
            name, group_id = group or _NO_GROUP[query.by], None
        answer.append(
            {
                "group": name,
                "group_id": group_id,
                "points": [entry.buckets[bucket].point(bucket) for bucket in sorted(entry.buckets)],
                "total": total.point(query.since),
            }
        )
    answer.sort(key=lambda s: (-s["total"]["requests"], s["group"]))
    return answer
