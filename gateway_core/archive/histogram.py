"""Latency and TTFT histograms that merge by adding counts: the rollups' percentiles.

Fixed log-spaced buckets: bucket i holds durations in [LOWEST_S * GROWTH**i, LOWEST_S * GROWTH**(i+1)), i from 0
to BUCKETS - 1 (0.1 ms to about 5 hours; shorter durations count in bucket 0, longer in the last). A percentile
is the geometric middle of the bucket holding that rank, so it is within sqrt(GROWTH) - 1 = 4.9% of the value a
direct nearest-rank computation over the same durations gives (between those bounds).

Stored as JSON text, `[first_bucket, count, count, ...]`: the counts of a run of buckets from the first one that
is not empty to the last one, so a typical hour of one key and model takes a few dozen numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import orjson

GROWTH = 1.1
LOWEST_S = 1e-4
BUCKETS = 200  # LOWEST_S * GROWTH**200: about 1.9e4 s, 5.3 hours
RELATIVE_ERROR = math.sqrt(GROWTH) - 1
_LOG_GROWTH = math.log(GROWTH)


def bucket_of(seconds: float) -> int:
    if seconds <= LOWEST_S:
        return 0
    return min(int(math.log(seconds / LOWEST_S) / _LOG_GROWTH), BUCKETS - 1)


def bucket_middle(index: int) -> float:
    return float(LOWEST_S * GROWTH ** (index + 0.5))


def encode(counts: dict[int, int]) -> str | None:
    """The stored form of bucket -> count; None for no counts at all."""
    if not counts:
        return None
    first, last = min(counts), max(counts)
    return orjson.dumps([first, *(counts.get(i, 0) for i in range(first, last + 1))]).decode()


def merge(a: str | None, b: str | None) -> str | None:
    """Two stored histograms added together (the rollups' UPSERT calls this as an SQL function)."""
    if a is None:
        return b
    if b is None:
        return a
    counts = [0] * BUCKETS
    add_into(counts, a)
    add_into(counts, b)
    return encode({i: c for i, c in enumerate(counts) if c})


def add_into(counts: list[int], stored: str | None) -> None:
    """Add a stored histogram into a dense list of BUCKETS counts."""
    if stored is None:
        return
    first, *run = orjson.loads(stored)
    for offset, count in enumerate(run, start=first):
        counts[offset] += count


def percentile(counts: list[int], fraction: float) -> float | None:
    """The nearest-rank `fraction` percentile (0.5, 0.95) of a dense histogram; None when it is empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return bucket_middle(index)
    return bucket_middle(BUCKETS - 1)


def counts_of(durations: Iterable[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for seconds in durations:
        index = bucket_of(seconds)
        counts[index] = counts.get(index, 0) + 1
    return counts
