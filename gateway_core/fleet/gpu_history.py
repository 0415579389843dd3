"""An hour of telemetry in fixed rings: each GPU's utilisation, memory, power and temperature, and each
provider's requests and tokens per second, one sample per GPU-sampler tick, downsampled on request.

Memory: a ring holds its sample times as doubles (8 bytes) and each metric as a float32 (4 bytes). At the
sampler's 1 s default an hour is 3,600 samples, so a GPU (4 metrics) costs 3,600 x (8 + 4 x 4) = 86,400 bytes
(84 KiB) and 8 GPUs 691,200 bytes (675 KiB); a provider (2 metrics) costs 3,600 x (8 + 2 x 4) = 57,600 bytes.
The arrays are allocated whole when a GPU or provider is first seen and never grow.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway_core.contracts.views import (
    GpuHistoryView,
    GpuSeriesView,
    HistoryWindow,
    ProviderHistoryView,
    ProviderSeriesView,
)
from gateway_core.fleet.gpus import GpuSnapshot

HOUR_S = 3600.0
WINDOWS_MIN: tuple[int, ...] = (1, 5, 15, 60)  # the windows the console offers; the route takes any 1..60
MAX_POINTS = 600  # no chart is wider than this many cells
MAX_SAMPLES = 36_000  # a 0.1 s sampler still keeps an hour; a faster one keeps less than an hour
MAX_PROVIDERS = 256  # providers removed long ago are forgotten first: memory stays bounded
MIB = 1024 * 1024
NAN = float("nan")


def ring_capacity(interval_s: float) -> int:
    """Samples in an hour at this interval, plus one so a full hour's window has both its ends."""
    return min(MAX_SAMPLES, math.ceil(HOUR_S / max(interval_s, 1e-3)) + 1)


class SeriesRing:
    """A fixed-size ring of (time, metric values); a missing reading is NaN."""

    def __init__(self, metrics: Sequence[str], capacity: int) -> None:
        self.metrics = tuple(metrics)
        self.capacity = capacity
        self._times = array("d", bytes(8 * capacity))
        self._values = {name: array("f", bytes(4 * capacity)) for name in self.metrics}
        self._next = 0  # where the next sample goes
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, at: float, values: Mapping[str, float | None]) -> None:
        slot = self._next
        self._times[slot] = at
        for name, ring in self._values.items():
            value = values.get(name)
            ring[slot] = NAN if value is None else value
        self._next = (slot + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def _ordered(self, ring: array[float]) -> array[float]:
        """The ring oldest first (one C-level copy of at most `capacity` items)."""
        if self._count < self.capacity:
            return ring[: self._count]
        return ring[self._next :] + ring[: self._next]

    def buckets(self, start: float, end: float, points: int) -> dict[str, list[float | None]]:
        """Each metric's mean over `points` equal buckets of [start, end); None where a bucket has no reading."""
        times = self._ordered(self._times)
        step = (end - start) / points
        # The index of each bucket's first sample: the samples are in time order, so one bisect per bucket.
        edges = [bisect_left(times, start + step * index) for index in range(points)]
        edges.append(bisect_left(times, end))
        answer: dict[str, list[float | None]] = {}
        for name in self.metrics:
            values = self._ordered(self._values[name])
            answer[name] = [_mean(values[edges[index] : edges[index + 1]]) for index in range(points)]
        return answer


def _mean(values: array[float]) -> float | None:
    present = [value for value in values if value == value]  # NaN != NaN: unsupported readings are left out
    return round(sum(present) / len(present), 3) if present else None


def window(minutes: int, points: int, end: float) -> HistoryWindow:
    return {"minutes": minutes, "points": points, "step_s": minutes * 60 / points, "end": end}


GPU_METRICS = ("utilization_percent", "memory_used_mib", "power_draw_watts", "temperature_c")


@dataclass(slots=True)
class _GpuRing:
    index: int
    name: str
    memory_total_bytes: int | None
    ring: SeriesRing


class GpuHistory:
    """One ring per GPU (by UUID), fed each GPU sample."""

    def __init__(self, interval_s: float) -> None:
        self.capacity = ring_capacity(interval_s)
        self.interval_s = interval_s
        self._gpus: dict[str, _GpuRing] = {}
        self._last_at = -math.inf

    def record(self, snapshot: GpuSnapshot, at: float) -> None:
        if snapshot.state != "ok":
            return  # no driver: nothing to keep, and the console says why from the snapshot
        if at - self._last_at < self.interval_s / 2:
            return  # an extra sample between ticks (an on-demand load's): the ring keeps its hour
        self._last_at = at
        for device in snapshot.devices:
            kept = self._gpus.get(device.uuid)
            if kept is None:
                kept = self._gpus[device.uuid] = _GpuRing(
                    device.index, device.name, device.memory_total_bytes, SeriesRing(GPU_METRICS, self.capacity)
                )
            kept.index, kept.name, kept.memory_total_bytes = device.index, device.name, device.memory_total_bytes
            used = device.memory_used_bytes
            kept.ring.append(
                at,
                {
                    "utilization_percent": device.utilization_percent,
                    "memory_used_mib": None if used is None else used / MIB,  # float32 holds MiB exactly
                    "power_draw_watts": device.power_draw_watts,
                    "temperature_c": device.temperature_c,
                },
            )

    def view(self, minutes: int, points: int, end: float) -> GpuHistoryView:
        start = end - minutes * 60
        series: list[GpuSeriesView] = []
        for uuid, kept in sorted(self._gpus.items(), key=lambda item: item[1].index):
            buckets = kept.ring.buckets(start, end, points)
            series.append(
                {
                    "index": kept.index,
                    "uuid": uuid,
                    "name": kept.name,
                    "memory_total_bytes": kept.memory_total_bytes,
                    "utilization_percent": buckets["utilization_percent"],
                    "memory_used_bytes": [None if v is None else round(v * MIB) for v in buckets["memory_used_mib"]],
                    "power_draw_watts": buckets["power_draw_watts"],
                    "temperature_c": buckets["temperature_c"],
                }
            )
        return {**window(minutes, points, end), "interval_s": self.interval_s, "devices": series}


@dataclass(slots=True)
class _ProviderRing:
    requests: int  # the counters at the last sample, to take rates from
    tokens: int
    at: float
    ring: SeriesRing


class ProviderRates:
    """Each provider's requests and completion tokens per second, from its counters since start, per tick."""

    def __init__(self, interval_s: float) -> None:
        self.capacity = ring_capacity(interval_s)
        self._min_gap_s = interval_s / 2  # extra GPU samples between ticks add no rate sample
        self._providers: dict[str, _ProviderRing] = {}

    def record(self, counters: Iterable[tuple[str, int, int]], at: float) -> None:
        """counters: (provider, requests so far, completion tokens so far) for every provider configured now."""
        for name, requests, tokens in counters:
            kept = self._providers.get(name)
            if kept is None:
                if len(self._providers) >= MAX_PROVIDERS:
                    del self._providers[next(iter(self._providers))]  # the one first seen longest ago
                self._providers[name] = _ProviderRing(requests, tokens, at, SeriesRing(("rps", "tps"), self.capacity))
                continue  # a rate needs two samples
            elapsed = at - kept.at
            if elapsed < self._min_gap_s:
                continue  # counted in the next sample's rate
            kept.ring.append(
                at,
                {"rps": (requests - kept.requests) / elapsed, "tps": (tokens - kept.tokens) / elapsed},
            )
            kept.requests, kept.tokens, kept.at = requests, tokens, at

    def forget(self, keep: Iterable[str]) -> None:
        """Drop providers no longer configured."""
        kept = set(keep)
        for name in [name for name in self._providers if name not in kept]:
            del self._providers[name]

    def view(self, minutes: int, points: int, end: float) -> ProviderHistoryView:
        start = end - minutes * 60
        series: list[ProviderSeriesView] = []
        for name in sorted(self._providers):
            buckets = self._providers[name].ring.buckets(start, end, points)
            series.append({"name": name, "requests_per_s": buckets["rps"], "tokens_per_s": buckets["tps"]})
        return {**window(minutes, points, end), "providers": series}
