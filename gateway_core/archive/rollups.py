"""Hourly (and daily) rollups per key x model x provider, kept by the writer in the same transaction as the rows.

A batch's rows are summed in memory per group, then added to the stored group with one UPSERT each; the
histograms are added by the SQL function `hist_merge` (histogram.merge). The daily table holds the same sums per
UTC day, so a usage query over months reads a few thousand rows, not one per hour. A missing key, model or
provider is stored as "" in the group's key (SQLite's NULLs would never conflict, so never be added to).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway_core.archive import histogram
from gateway_core.archive.rows import COLUMN
from gateway_core.contracts.history_views import ERROR_CLASSES, ErrorClass

HOUR_S = 3600
DAY_S = 86400

_STARTED, _KEY_ID, _KEY_NAME = COLUMN["started_at"], COLUMN["key_id"], COLUMN["key_name"]
_MODEL, _PROVIDER, _STATUS = COLUMN["model"], COLUMN["provider"], COLUMN["status"]
_PROMPT, _COMPLETION = COLUMN["prompt_tokens"], COLUMN["completion_tokens"]
_FIRST_TOKEN, _ENDED, _LATENCY, _TTFT = (
    COLUMN["first_token_at"],
    COLUMN["ended_at"],
    COLUMN["latency_s"],
    COLUMN["ttft_s"],
)
_TOKENS_PER_S, _GPU, _ENERGY = COLUMN["tokens_per_s"], COLUMN["gpu_seconds"], COLUMN["energy_joules"]

MEASURES: tuple[str, ...] = (
    "requests",
    "errors",
    *(f"errors_{name}" for name in ERROR_CLASSES),
    "prompt_tokens",
    "completion_tokens",
    "generation_s",
    "generation_tokens",
    "gpu_seconds",
    "gpu_requests",
    "energy_joules",
    "energy_requests",
)
HISTOGRAMS = ("latency_hist", "ttft_hist")


def error_class(status: int) -> ErrorClass | None:
    """The class of a status that is an error (anything but 2xx); None for a success."""
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return "auth"
    if status == 429:
        return "rate_limit"
    if status == 499:
        return "cancelled"
    if 400 <= status < 500:
        return "client"
    if status == 500:
        return "internal"
    return "upstream"  # 502-504, any other 5xx, and a status no route answers (1xx, 3xx) relayed from upstream


@dataclass(slots=True)
class _Group:
    key_name: str | None
    sums: list[float] = field(default_factory=lambda: [0] * len(MEASURES))
    latency: dict[int, int] = field(default_factory=dict)
    ttft: dict[int, int] = field(default_factory=dict)


_MEASURE = {name: index for index, name in enumerate(MEASURES)}
_ERRORS = _MEASURE["errors"]
_CLASS = {name: _MEASURE[f"errors_{name}"] for name in ERROR_CLASSES}
_PROMPT_SUM, _COMPLETION_SUM = _MEASURE["prompt_tokens"], _MEASURE["completion_tokens"]
_GEN_S, _GEN_TOKENS = _MEASURE["generation_s"], _MEASURE["generation_tokens"]
_GPU_SUM, _GPU_N, _ENERGY_SUM, _ENERGY_N = (
    _MEASURE["gpu_seconds"],
    _MEASURE["gpu_requests"],
    _MEASURE["energy_joules"],
    _MEASURE["energy_requests"],
)


class RollupBatch:
    """The sums of one batch's rows (of one month file), per hour and group."""

    def __init__(self) -> None:
        self._groups: dict[tuple[int, str, str, str], _Group] = {}

    def add(self, values: tuple[Any, ...]) -> None:
        hour = int(values[_STARTED] // HOUR_S) * HOUR_S
        group_key = (hour, values[_KEY_ID] or "", values[_MODEL] or "", values[_PROVIDER] or "")
        group = self._groups.get(group_key)
        if group is None:
            group = self._groups[group_key] = _Group(values[_KEY_NAME])
        elif values[_KEY_NAME] is not None:
            group.key_name = values[_KEY_NAME]
        sums = group.sums
        sums[0] += 1
        kind = error_class(values[_STATUS])
        if kind is not None:
            sums[_ERRORS] += 1
            sums[_CLASS[kind]] += 1
        sums[_PROMPT_SUM] += values[_PROMPT] or 0
        sums[_COMPLETION_SUM] += values[_COMPLETION] or 0
        if values[_TOKENS_PER_S] is not None:  # known and > 0: the tokens over the time that made them
            sums[_GEN_S] += values[_ENDED] - values[_FIRST_TOKEN]
            sums[_GEN_TOKENS] += values[_COMPLETION]
        if values[_GPU] is not None:
            sums[_GPU_SUM] += values[_GPU]
            sums[_GPU_N] += 1
        if values[_ENERGY] is not None:
            sums[_ENERGY_SUM] += values[_ENERGY]
            sums[_ENERGY_N] += 1
        bucket = histogram.bucket_of(values[_LATENCY])
        group.latency[bucket] = group.latency.get(bucket, 0) + 1
        if values[_TTFT] is not None:
            bucket = histogram.bucket_of(values[_TTFT])
            group.ttft[bucket] = group.ttft.get(bucket, 0) + 1

    def write(self, connection: sqlite3.Connection) -> None:
        """Add this batch's sums to the stored hourly and daily groups (inside the caller's transaction)."""
        hourly = [self._parameters(key, group) for key, group in self._groups.items()]
        connection.executemany(_upsert("rollups", "hour_start"), hourly)
        daily: dict[tuple[int, str, str, str], list[Any]] = {}
        for parameters in hourly:
            day_key = (int(parameters[0] // DAY_S) * DAY_S, *parameters[1:4])
            day = daily.get(day_key)
            if day is None:
                daily[day_key] = [*day_key, *parameters[4:]]
            else:
                _add_parameters(day, parameters)
        connection.executemany(_upsert("daily_rollups", "day_start"), daily.values())

    @staticmethod
    def _parameters(key: tuple[int, str, str, str], group: _Group) -> list[Any]:
        return [
            *key,
            group.key_name,
            *group.sums,
            histogram.encode(group.latency),
            histogram.encode(group.ttft),
        ]


def _add_parameters(into: list[Any], parameters: list[Any]) -> None:
    if parameters[4] is not None:
        into[4] = parameters[4]
    first = 5
    for offset in range(len(MEASURES)):
        into[first + offset] += parameters[first + offset]
    for offset in range(len(HISTOGRAMS)):
        at = first + len(MEASURES) + offset
        into[at] = histogram.merge(into[at], parameters[at])


def _upsert(table: str, period: str) -> str:
    columns = (period, "key_id", "model", "provider", "key_name", *MEASURES, *HISTOGRAMS)
    added = ", ".join(f"{name} = {name} + excluded.{name}" for name in MEASURES)
    merged = ", ".join(f"{name} = hist_merge({name}, excluded.{name})" for name in HISTOGRAMS)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({period}, key_id, model, provider) DO UPDATE SET "
        f"key_name = coalesce(excluded.key_name, key_name), {added}, {merged}"
    )


def register_functions(connection: sqlite3.Connection) -> None:
    """The SQL functions the rollups' UPSERT calls, on the writer's connection."""
    connection.create_function("hist_merge", 2, histogram.merge, deterministic=True)


def add_rows(batch: RollupBatch, rows: Iterable[tuple[Any, ...]]) -> RollupBatch:
    for values in rows:
        batch.add(values)
    return batch
