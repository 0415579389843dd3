"""Usage over time, read from the rollups only (never the rows): grouped by key, model or provider, per hour or day.

The range is widened to whole hours. With day buckets, the whole UTC days inside it are read from the daily
rollups and the hours at either end from the hourly ones, so 90 days cost about as much as a few days of hours.
Points are sparse: a bucket with no requests is left out. Percentiles come from the merged histograms
(histogram.py: within 4.9%).
"""

from __future__ import annotations

import math
import operator
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
_REQUESTS, _ERRORS, _PROMPT, _COMPLETION = _M["requests"], _M["errors"], _M["prompt_tokens"], _M["completion_tokens"]
_GENERATION_S, _GENERATION_TOKENS = _M["generation_s"], _M["generation_tokens"]
_GPU, _GPU_N, _ENERGY, _ENERGY_N = _M["gpu_seconds"], _M["gpu_requests"], _M["energy_joules"], _M["energy_requests"]
_CLASSES = [(name, _M[f"errors_{name}"]) for name in ERROR_CLASSES]
_LATENCY, _TTFT = len(MEASURES), len(MEASURES) + 1


class _Sums:
    __slots__ = ("latency", "measures", "ttft")

    def __init__(self) -> None:
        self.measures: list[float] = [0] * len(MEASURES)
        self.latency = histogram.Counts()
        self.ttft = histogram.Counts()

    def add(self, row: tuple[Any, ...], first: int) -> None:
        self.measures = list(map(operator.add, self.measures, row[first : first + len(MEASURES)]))
        self.latency.add_joined(row[first + _LATENCY])
        self.ttft.add_joined(row[first + _TTFT])

    def merge(self, other: _Sums) -> None:
        self.measures = list(map(operator.add, self.measures, other.measures))
        self.latency.merge(other.latency)
        self.ttft.merge(other.ttft)

    def point(self, bucket_start: float) -> UsagePoint:
        m = self.measures
        generation_s = m[_GENERATION_S]
        latency_p50, latency_p95 = self.latency.percentiles(0.5, 0.95)
        ttft_p50, ttft_p95 = self.ttft.percentiles(0.5, 0.95)
        return {
            "bucket_start": bucket_start,
            "requests": int(m[_REQUESTS]),
            "errors": int(m[_ERRORS]),
            "errors_by_class": {name: int(m[index]) for name, index in _CLASSES},
            "prompt_tokens": int(m[_PROMPT]),
            "completion_tokens": int(m[_COMPLETION]),
            "latency_p50_s": latency_p50,
            "latency_p95_s": latency_p95,
            "ttft_p50_s": ttft_p50,
            "ttft_p95_s": ttft_p95,
            "tokens_per_s": m[_GENERATION_TOKENS] / generation_s if generation_s > 0 else None,
            "gpu_seconds": m[_GPU] if m[_GPU_N] else None,
            "energy_joules": m[_ENERGY] if m[_ENERGY_N] else None,
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
                    for row in _rows(connection, column, start, end, width):
                        _add(series, row)
    return {
        "by": query.by,
        "bucket": query.bucket,
        "since": query.since,
        "until": query.until,
        "series": _answer(series, query),
    }


def _rows(connection: sqlite3.Connection, column: str, start: int, end: int, width: int) -> Iterator[tuple[Any, ...]]:
    """The rollups of [start, end) summed per bucket and group in SQL: (bucket, group, period the key's name was
    last seen, that name, *MEASURES, the histograms of the bucket's rows joined by commas). With day buckets,
    whole days come from the daily table."""
    ranges = [("rollups", "hour_start", start, end)]
    first_day, last_day = math.ceil(start / DAY_S) * DAY_S, (end // DAY_S) * DAY_S
    if width == DAY_S and first_day < last_day:
        ranges = [
            ("rollups", "hour_start", start, first_day),
            ("daily_rollups", "day_start", first_day, last_day),
            ("rollups", "hour_start", last_day, end),
        ]
    sums = ", ".join(f"sum({name})" for name in MEASURES)
    joined = ", ".join(f"group_concat({name})" for name in HISTOGRAMS)
    for table, period, low, high in ranges:
        if low >= high:
            continue
        # max() makes SQLite take the bare key_name from the row of the latest period: the key's latest name.
        sql = (
            f"SELECT {period} / {width} * {width} AS bucket, {column}, max({period}), key_name, {sums}, {joined} "
            f"FROM {table} WHERE {period} >= ? AND {period} < ? GROUP BY bucket, {column}"
        )
        yield from connection.execute(sql, (low, high))


def _add(series: dict[str, _Series], row: tuple[Any, ...]) -> None:
    group = row[1]
    entry = series.get(group)
    if entry is None:
        entry = series[group] = _Series()
    if row[3] is not None and row[2] >= entry.named_at:  # the key's name as it was last seen
        entry.name, entry.named_at = row[3], row[2]
    bucket = float(row[0])
    sums = entry.buckets.get(bucket)
    if sums is None:
        sums = entry.buckets[bucket] = _Sums()
    sums.add(row, 4)


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
