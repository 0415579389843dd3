"""Usage over time comes from the hourly and daily rollups alone, with percentiles from merged histograms."""

from __future__ import annotations

import math
import random
import sqlite3
from datetime import UTC, datetime

import pytest

from gateway_core.archive import SqliteArchive, UsageQuery
from gateway_core.archive.histogram import RELATIVE_ERROR
from gateway_core.contracts.history_views import UsageView
from tests.archive.records import a_record, stored

NOV_10 = datetime(2026, 11, 10, tzinfo=UTC).timestamp()
DAY = 86400.0
HOUR = 3600.0


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


async def usage(archive: SqliteArchive, **query: object) -> UsageView:
    return await archive.usage(UsageQuery(**query))  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_percentiles_from_merged_hourly_histograms_are_within_the_stated_error_of_a_direct_computation(
    archive: SqliteArchive,
):
    chance = random.Random(13)
    latencies = [chance.lognormvariate(0, 1.2) for _ in range(600)]  # 0.03 s to 30 s
    ttfts = [latency * chance.uniform(0.05, 0.5) for latency in latencies]
    for number, (latency, ttft) in enumerate(zip(latencies, ttfts, strict=True)):
        started = NOV_10 + (number % 40) * HOUR + number  # spread over 40 hours: many histograms to merge
        archive.record(a_record(started_at=started, latency_s=latency, ttft_s=ttft))
    await archive.flush()

    for bucket in ("hour", "day"):
        answer = await usage(archive, since=NOV_10, until=NOV_10 + 3 * DAY, bucket=bucket)
        (series,) = answer["series"]
        total = series["total"]
        assert total["requests"] == 600
        for name, values in (("latency", latencies), ("ttft", ttfts)):
            for label, fraction in (("p50", 0.5), ("p95", 0.95)):
                estimate = total[f"{name}_{label}_s"]  # type: ignore[literal-required]
                exact = nearest_rank(values, fraction)
                assert estimate is not None
                assert abs(estimate - exact) / exact <= RELATIVE_ERROR, (bucket, name, label, estimate, exact)


@pytest.mark.asyncio
async def test_day_buckets_read_whole_days_and_the_hours_at_either_end_and_add_up_like_hour_buckets(
    archive: SqliteArchive,
):
    records = [a_record(started_at=NOV_10 + i * 1800.0, prompt_tokens=i, completion_tokens=2 * i) for i in range(200)]
    for record in records:
        archive.record(record)
    await archive.flush()
    since, until = NOV_10 + 5.5 * HOUR, NOV_10 + 3 * DAY + 7.25 * HOUR  # neither end on a day or an hour
    in_range = [r for r in records if math.floor(since / HOUR) * HOUR <= r.started_at < math.ceil(until / HOUR) * HOUR]

    by_day = (await usage(archive, since=since, until=until, bucket="day"))["series"][0]
    by_hour = (await usage(archive, since=since, until=until, bucket="hour"))["series"][0]

    assert [p["bucket_start"] for p in by_day["points"]] == [NOV_10 + d * DAY for d in range(4)]
    for series in (by_day, by_hour):
        assert series["total"]["requests"] == len(in_range)
        assert series["total"]["prompt_tokens"] == sum(r.prompt_tokens or 0 for r in in_range)
    assert sum(p["requests"] for p in by_day["points"]) == sum(p["requests"] for p in by_hour["points"])
    first_day = [r for r in in_range if r.started_at < NOV_10 + DAY]
    assert by_day["points"][0]["requests"] == len(first_day)  # the partial first day, from its hours


@pytest.mark.asyncio
async def test_usage_reads_the_rollups_only_never_the_rows(archive: SqliteArchive):
    for i in range(30):
        archive.record(a_record(started_at=NOV_10 + i * 600))
    await archive.flush()
    before = await usage(archive, since=NOV_10, until=NOV_10 + DAY)
    path = archive.settings.directory / "2026-11.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("DELETE FROM requests")  # only this test ever deletes: to prove usage does not read rows
    connection.commit()
    connection.close()
    assert stored(path, "SELECT count(*) FROM requests")[0][0] == 0

    assert await usage(archive, since=NOV_10, until=NOV_10 + DAY) == before
    assert before["series"][0]["total"]["requests"] == 30


@pytest.mark.asyncio
async def test_errors_are_counted_by_class(archive: SqliteArchive):
    statuses = [200, 200, 401, 403, 429, 404, 400, 499, 500, 502, 503, 504, 501]
    for number, status in enumerate(statuses):
        archive.record(a_record(started_at=NOV_10 + number, status=status))
    await archive.flush()

    total = (await usage(archive, since=NOV_10, until=NOV_10 + HOUR))["series"][0]["total"]

    assert total["requests"] == 13
    assert total["errors"] == 11
    assert total["errors_by_class"] == {
        "auth": 2,
        "rate_limit": 1,
        "client": 2,
        "cancelled": 1,
        "internal": 1,
        "upstream": 4,
    }


@pytest.mark.asyncio
async def test_gpu_time_and_energy_are_none_for_a_group_with_no_measurement_and_sums_otherwise(
    archive: SqliteArchive,
):
    local = [a_record(started_at=NOV_10 + i, model="local", gpu_seconds=1.5, energy_joules=100.0) for i in range(3)]
    unmeasured = a_record(started_at=NOV_10 + 5, model="local", gpu_seconds=None, energy_joules=None)
    hosted = [a_record(started_at=NOV_10 + 10 + i, model="hosted") for i in range(4)]
    for record in [*local, unmeasured, *hosted]:
        archive.record(record)
    await archive.flush()

    answer = await usage(archive, by="model", since=NOV_10, until=NOV_10 + DAY)
    by_model = {series["group"]: series["total"] for series in answer["series"]}

    assert (by_model["local"]["gpu_seconds"], by_model["local"]["energy_joules"]) == (4.5, 300.0)
    assert (by_model["hosted"]["gpu_seconds"], by_model["hosted"]["energy_joules"]) == (None, None)


@pytest.mark.asyncio
async def test_tokens_per_second_is_all_completion_tokens_over_all_generation_time(archive: SqliteArchive):
    fast = a_record(started_at=NOV_10, first_token_at=NOV_10 + 1, ended_at=NOV_10 + 2, completion_tokens=100)
    slow = a_record(started_at=NOV_10 + 5, first_token_at=NOV_10 + 6, ended_at=NOV_10 + 9, completion_tokens=20)
    unknown = a_record(started_at=NOV_10 + 10, first_token_at=None, completion_tokens=50)
    for record in (fast, slow, unknown):
        archive.record(record)
    await archive.flush()

    total = (await usage(archive, since=NOV_10, until=NOV_10 + HOUR))["series"][0]["total"]

    assert total["tokens_per_s"] == pytest.approx(120 / 4)  # the request with no first token adds nothing
    assert total["completion_tokens"] == 170


@pytest.mark.asyncio
async def test_series_are_grouped_by_key_model_or_provider_busiest_first(archive: SqliteArchive):
    plan = [("ka", "alpha", "qwen", "box-a")] * 5 + [("kb", "beta", "llama", "box-b")] * 3
    plan += [(None, None, "llama", None)] * 2  # refused before any key was known
    for number, (key_id, key_name, model, provider) in enumerate(plan):
        archive.record(
            a_record(started_at=NOV_10 + number, key_id=key_id, key_name=key_name, model=model, provider=provider)
        )
    await archive.flush()

    by_key = await usage(archive, by="key", since=NOV_10, until=NOV_10 + DAY)
    by_model = await usage(archive, by="model", since=NOV_10, until=NOV_10 + DAY)
    by_provider = await usage(archive, by="provider", since=NOV_10, until=NOV_10 + DAY)

    assert [(s["group"], s["group_id"], s["total"]["requests"]) for s in by_key["series"]] == [
        ("alpha", "ka", 5),
        ("beta", "kb", 3),
        ("(no key)", None, 2),
    ]
    assert [(s["group"], s["total"]["requests"]) for s in by_model["series"]] == [("llama", 5), ("qwen", 5)]
    assert [(s["group"], s["total"]["requests"]) for s in by_provider["series"]] == [
        ("box-a", 5),
        ("box-b", 3),
        ("(no provider)", 2),
    ]
    assert by_key["by"] == "key"
    assert by_key["series"][0]["total"]["bucket_start"] == NOV_10


@pytest.mark.asyncio
async def test_a_key_renamed_during_the_range_is_one_series_under_its_latest_name(archive: SqliteArchive):
    archive.record(a_record(started_at=NOV_10, key_id="ka", key_name="old-name"))
    archive.record(a_record(started_at=NOV_10 + 2 * HOUR, key_id="ka", key_name="new-name"))
    await archive.flush()

    (series,) = (await usage(archive, since=NOV_10, until=NOV_10 + DAY))["series"]

    assert (series["group"], series["group_id"], series["total"]["requests"]) == ("new-name", "ka", 2)


@pytest.mark.asyncio
async def test_a_range_across_two_months_reads_both_files(archive: SqliteArchive):
    end_of_october = datetime(2026, 10, 31, 22, tzinfo=UTC).timestamp()
    archive.record(a_record(started_at=end_of_october))
    archive.record(a_record(started_at=end_of_october + 3 * HOUR))  # 1 November, 01:00
    await archive.flush()

    (series,) = (await usage(archive, since=end_of_october - DAY, until=end_of_october + DAY))["series"]

    assert series["total"]["requests"] == 2
    assert len(series["points"]) == 2  # two days: sparse points, one per bucket with requests
