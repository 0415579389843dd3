"""Latency and TTFT histograms that merge by adding counts: the rollups' percentiles.

Fixed log-spaced buckets: bucket i holds durations in [LOWEST_S * GROWTH**i, LOWEST_S * GROWTH**(i+1)), i from 0
to BUCKETS - 1 (0.1 ms to about 5 hours; shorter durations count in bucket 0, longer in the last). A percentile
is the geometric middle of the bucket holding that rank, so it is within sqrt(GROWTH) - 1 = 4.9% of the value a
direct nearest-rank computation over the same durations gives (between those bounds).

Stored as JSON text, `[first_bucket, count, count, ...]`: the counts of a run of buckets from the first one that
is not empty to the last one, so a typical hour of one key and model takes a few dozen numbers.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
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


class Counts:
    """A histogram being merged: dense counts, and the range of buckets touched, so that merging and percentiles
    look only at that range (a few dozen buckets, not all of them). The adds are slice-wise, in C."""

    __slots__ = ("counts", "high", "low", "total")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.low, self.high, self.total = BUCKETS, 0, 0

    def add(self, stored: str | None) -> None:
        if stored is not None:
            first, *run = orjson.loads(stored)
            self._add_run(first, run)

    def add_joined(self, joined: str | None) -> None:
        """Add stored histograms joined by commas (SQL's group_concat), decoded at once."""
        if joined is not None:
            for first, *run in orjson.loads(f"[{joined}]"):
                self._add_run(first, run)

    def _add_run(self, first: int, run: list[int]) -> None:
        end = first + len(run)
        counts = self.counts
        counts[first:end] = map(operator.add, counts[first:end], run)
        self.low, self.high, self.total = min(self.low, first), max(self.high, end), self.total + sum(run)

    def merge(self, other: Counts) -> None:
        if other.total:
            self._add_run(other.low, other.counts[other.low : other.high])

    def percentiles(self, *fractions: float) -> list[float | None]:
        """Nearest-rank percentiles, each the middle of the bucket holding its rank; None when empty."""
        if self.total == 0:
            return [None] * len(fractions)
        cumulative = list(itertools.accumulate(self.counts[self.low : self.high]))
        ranks = [max(1, math.ceil(fraction * self.total)) for fraction in fractions]
        return [bucket_middle(self.low + bisect.bisect_left(cumulative, rank)) for rank in ranks]


def counts_of(durations: Iterable[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for seconds in durations:
        index = bucket_of(seconds)
        counts[index] = counts.get(index, 0) + 1
    return counts
