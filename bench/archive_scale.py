"""The request archive at scale: one month file of 1,000,000 rows, built through the real writer, then queried.

`build_month(directory, rows)` records realistic requests (a few dozen keys, each using a model or two, each
model on a provider or two; request and answer bodies of a few hundred bytes drawn from a Zipf-distributed
vocabulary, so the text index is realistic) through `SqliteArchive.record` and `flush`, in blocks, and notes
the insert rate of each 100,000-row block. Then the queries the console and the CLI make are timed (the median
of several runs each) against the issue's targets: a search by key over one day <= 50 ms, a text search
<= 500 ms, the newest page (the History screen's first query), and a 30-day usage by key in day buckets
<= 100 ms. The smoke plan does the same on 20,000 rows for the test suite.

    python -m bench --archive-only          # the full plan, into bench/results/latest-archive.json/.md
    python -m bench.archive_scale DIR ROWS  # only build a month in DIR (an archive directory)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway_core.archive import ArchiveSettings, HistoryQuery, SqliteArchive, UsageQuery
from gateway_core.archive.months import month_add, month_start
from gateway_core.contracts.archive import RequestRecord
from gateway_core.contracts.instants import month_of

BLOCK_ROWS = 100_000  # the insert rate is reported per block of this many rows
FEED_ROWS = 10_000  # recorded at once, then flushed: under the queue's bound, so nothing is dropped
RUNS = 7  # each query's median is over this many runs (after one untimed)
SEED = 13
DAY_S = 86400.0


@dataclass(frozen=True)
class ScalePlan:
    name: str
    rows: int
    console_runs: int  # the History screen reopened this many times after its first open


SCALE_PLANS = {
    "archive": ScalePlan("archive", 1_000_000, console_runs=5),
    "archive-smoke": ScalePlan("archive-smoke", 20_000, console_runs=1),
}

TARGETS_MS = {"key_day": 50.0, "text": 500.0, "usage_30d": 100.0}


# -- realistic traffic ----------------------------------------------------------------------------------


class Traffic:
    """Keys, models and providers in a plausible shape, and request bodies of varied words."""

    def __init__(self, seed: int = SEED) -> None:
        self.random = random.Random(seed)
        chance = self.random
        syllables = ["ka", "lo", "mi", "ren", "tor", "vel", "sa", "qu", "ix", "on", "dra", "bel", "fin", "gu", "zo"]
        syllables += ["pe", "ta", "ni", "ro", "am"]
        words = sorted({"".join(chance.choices(syllables, k=chance.randint(2, 4))) for _ in range(12_000)})
        chance.shuffle(words)
        self.words = words
        # Zipf's law: the n-th most common word is about 1/n as frequent as the first.
        self.word_weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
        self.models = ["qwen2.5-7b", "llama3.1-8b", "gemma3-27b", "mistral-small", "phi4", "deepseek-r1-14b"]
        self.model_providers = {
            model: chance.sample([f"gpu-box-{n}" for n in range(1, 7)], chance.randint(1, 2)) for model in self.models
        }
        self.keys = [(f"k{n:04x}{chance.getrandbits(16):04x}", f"app-{n:02d}") for n in range(36)]
        self.key_models = {key: chance.sample(self.models, chance.randint(1, 2)) for key, _ in self.keys}
        self.key_weights = [1 / (n + 1) ** 0.8 for n in range(len(self.keys))]

    def sentence(self, low: int, high: int) -> str:
        count = self.random.randint(low, high)
        return " ".join(self.random.choices(self.words, cum_weights=self.word_weights, k=count))

    def records(self, count: int, since: float, until: float, first: int) -> list[RequestRecord]:
        """`count` requests started in order between `since` and `until` (numbered from `first`)."""
        chance = self.random
        span = (until - since) / count
        keys = chance.choices(self.keys, self.key_weights, k=count)
        out: list[RequestRecord] = []
        for offset, (key_id, key_name) in enumerate(keys):
            number = first + offset
            started = since + (offset + chance.random()) * span
            model = chance.choice(self.key_models[key_id])
            provider = chance.choice(self.model_providers[model])
            roll = chance.random()
            status = 200 if roll < 0.95 else 429 if roll < 0.97 else 401 if roll < 0.98 else 502
            stream = chance.random() < 0.6
            question = self.sentence(8, 40)
            answer = self.sentence(15, 60) if status == 200 else None
            prompt_tokens = len(question.split()) + 12
            completion_tokens = len(answer.split()) * 4 // 3 if answer else None
            ttft = chance.lognormvariate(-1.5, 0.6) if status == 200 else None
            latency = (ttft or 0) + (completion_tokens or 0) / chance.uniform(20, 80) + chance.uniform(0.001, 0.01)
            request_body = orjson.dumps(
                {"model": model, "messages": [{"role": "user", "content": question}], "stream": stream}
            )
            response_body = (
                orjson.dumps(
                    {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}], "model": model}
                )
                if answer
                else orjson.dumps({"error": {"message": "refused", "type": "rate_limit_error"}})
            )
            local = provider != "gpu-box-6"  # one provider is a hosted one: no GPU measurement
            out.append(
                RequestRecord(
                    id=f"req_{int(started * 1000):012x}bench000{number:08x}",
                    source="public",
                    route="chat",
                    started_at=started,
                    first_token_at=started + ttft if ttft is not None else None,
                    ended_at=started + latency,
                    key_id=key_id,
                    key_name=key_name,
                    model=model,
                    provider=provider if status != 401 else None,
                    upstream_model=f"{model}.gguf",
                    status=status,
                    error_code=None if status == 200 else "refused",
                    error_message=None if status == 200 else "refused by the bench",
                    providers_tried=(provider,) if status != 401 else (),
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    latency_s=latency,
                    ttft_s=ttft,
                    stream=stream,
                    client_address="127.0.0.1",
                    bytes_in=len(request_body),
                    bytes_out=len(response_body),
                    capture="full",
                    request_body=request_body,
                    response_body=response_body,
                    gpu_seconds=latency * 0.8 if local and status == 200 else None,
                    energy_joules=latency * 180.0 if local and status == 200 else None,
                )
            )
        return out


def default_month(now: float | None = None) -> str:
    """The last whole month before now: a 30-day usage query and the console's 7-day view both find rows."""
    return month_add(month_of(time.time() if now is None else now), -1)


# -- building ---------------------------------------------------------------------------------------------


def build_month(directory: Path, rows: int, month: str | None = None) -> dict[str, Any]:
    """Write `rows` requests spread over `month` (default: last month) into `directory`/YYYY-MM.sqlite, through
    SqliteArchive.record and flush. Returns the figures of the build (rates per block, record() cost, size)."""
    return asyncio.run(_build(directory, rows, month or default_month()))


async def _build(directory: Path, rows: int, month: str) -> dict[str, Any]:
    traffic = Traffic()
    since, until = month_start(month), month_start(month_add(month, 1))
    archive = SqliteArchive(ArchiveSettings(directory=directory))
    await archive.start()
    blocks: list[dict[str, Any]] = []
    record_s = 0.0
    flush_s: list[float] = []
    started = time.perf_counter()
    block_started, block_rows = started, 0
    try:
        pending = traffic.records(min(FEED_ROWS, rows), since, until, 0) if rows else []
        recorded = 0
        span = (until - since) / rows if rows else 0.0
        while pending:
            begun = time.perf_counter()
            for record in pending:
                archive.record(record)
            record_s += time.perf_counter() - begun
            recorded += len(pending)
            block_rows += len(pending)
            next_count = min(FEED_ROWS, rows - recorded)
            # The next block is generated while the writer writes this one (it gives the GIL up inside SQLite).
            upcoming = (
                traffic.records(next_count, since + recorded * span, since + (recorded + next_count) * span, recorded)
                if next_count
                else []
            )
            flushed = time.perf_counter()
            await archive.flush(timeout_s=600)
            flush_s.append(time.perf_counter() - flushed)
            if block_rows >= BLOCK_ROWS or not upcoming:
                now = time.perf_counter()
                blocks.append(
                    {
                        "rows": block_rows,
                        "seconds": round(now - block_started, 2),
                        "rows_per_s": _rate(block_rows, now - block_started),
                    }
                )
                block_started, block_rows = now, 0
            pending = upcoming
        status = archive.status()
    finally:
        await archive.close()
    path = directory / f"{month}.sqlite"
    return {
        "month": month,
        "rows": rows,
        "written": status["written"],
        "dropped": status["dropped"],
        "seconds": round(time.perf_counter() - started, 1),
        "blocks": blocks,
        "record_us_per_call": round(record_s / rows * 1e6, 2) if rows else None,
        "flush_s": {"median": round(statistics.median(flush_s), 3), "max": round(max(flush_s), 3)} if flush_s else {},
        "file_bytes": path.stat().st_size,
        "path": str(path),
    }


def _rate(rows: int, seconds: float) -> int:
    return round(rows / seconds) if seconds > 0 else 0


# -- querying ---------------------------------------------------------------------------------------------


Question = HistoryQuery | UsageQuery | str  # a search, a usage query, or one request's id


async def _timed(archive: SqliteArchive, question: Question, runs: int = RUNS) -> dict[str, Any]:
    async def ask() -> Any:
        if isinstance(question, HistoryQuery):
            return await archive.search(question)
        if isinstance(question, UsageQuery):
            return await archive.usage(question)
        return await archive.get(question)

    answer = await ask()  # untimed: opens the reader connections and warms the page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = await ask()
        times.append((time.perf_counter() - started) * 1000)
    timed: dict[str, Any] = {"median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}
    if isinstance(question, UsageQuery):
        timed["series"] = len(answer["series"])
        timed["points"] = sum(len(series["points"]) for series in answer["series"])
    else:
        timed["rows"] = len(answer["rows"]) if isinstance(question, HistoryQuery) else int(answer is not None)
    return timed


def _questions(traffic: Traffic, month: str, newest_id: str) -> dict[str, tuple[str, Question]]:
    since = month_start(month)
    day = since + 14 * DAY_S  # a day in the middle of the month
    busiest, busiest_name = traffic.keys[0]
    quietest, _ = traffic.keys[-1]
    common, middling, rare = traffic.words[3], traffic.words[300], traffic.words[-1]
    until = since + 30 * DAY_S
    return {
        "newest_page": ("newest page of 100, no filter (the History screen's first query)", HistoryQuery()),
        "key_day": (
            f"key {busiest} (the busiest) over one day",
            HistoryQuery(key=busiest, since=day, until=day + DAY_S),
        ),
        "key_name_day": (
            f"key by name {busiest_name} over one day",
            HistoryQuery(key=busiest_name, since=day, until=day + DAY_S),
        ),
        "quiet_key_day": (
            f"key {quietest} (the quietest) over one day",
            HistoryQuery(key=quietest, since=day, until=day + DAY_S),
        ),
        "key_page": ("key, newest page, no range", HistoryQuery(key=busiest)),
        "model_page": ("model, newest page", HistoryQuery(model=traffic.models[0])),
        "provider_page": ("provider, newest page", HistoryQuery(provider="gpu-box-1")),
        "status_page": ("status 5xx, newest page", HistoryQuery(status="5xx")),
        "text": (f"text '{middling}' (a middling word)", HistoryQuery(text=middling)),
        "text_common": (f"text '{common}' (a common word)", HistoryQuery(text=common)),
        "text_rare": (f"text '{rare}' (the rarest word)", HistoryQuery(text=rare)),
        "text_two_words": (f"text '{middling} {rare}' (both words)", HistoryQuery(text=f"{middling} {rare}")),
        "text_key_day": (
            f"text '{middling}', key {busiest}, one day",
            HistoryQuery(text=middling, key=busiest, since=day, until=day + DAY_S),
        ),
        "get": ("one request by id, with its bodies", newest_id),
        "usage_30d": ("30-day usage by key, day buckets", UsageQuery("key", since, until, "day")),
        "usage_30d_model": ("30-day usage by model, day buckets", UsageQuery("model", since, until, "day")),
        "usage_7d_hour": (
            "7-day usage by key, hour buckets",
            UsageQuery(by="key", since=day, until=day + 7 * DAY_S, bucket="hour"),
        ),
    }


async def _queries(directory: Path, month: str) -> dict[str, Any]:
    archive = SqliteArchive(ArchiveSettings(directory=directory))
    await archive.start()
    try:
        newest = await archive.search(HistoryQuery(limit=1))
        newest_id = newest["rows"][0]["id"] if newest["rows"] else ""
        results: dict[str, Any] = {}
        for name, (label, question) in _questions(Traffic(), month, newest_id).items():
            results[name] = {"label": label, **await _timed(archive, question)}
        return results
    finally:
        await archive.close()


def measure(plan: ScalePlan, workdir: Path | None = None) -> dict[str, Any]:
    """Build the plan's month through the writer, time the queries, then the console's History screen on it."""
    with tempfile.TemporaryDirectory(prefix="corral-bench-archive-") as scratch:
        data_dir = workdir or Path(scratch)
        month = default_month()
        build = build_month(data_dir / "archive", plan.rows, month)
        queries = asyncio.run(_queries(data_dir / "archive", month))
        results: dict[str, Any] = {"plan": {"name": plan.name, "rows": plan.rows}, "build": build, "queries": queries}
        try:
            from bench.console_history import measure_history_open  # the console's side: its own daemon and app
        except ImportError as error:
            results["console_history"] = {"skipped": f"bench.console_history could not be imported ({error})"}
        else:
            results["console_history"] = measure_history_open(data_dir, warm_runs=plan.console_runs)
        return results


def run(plan: ScalePlan) -> dict[str, Any]:
    """The whole report of an archive-only run, as bench/__main__.py writes it."""
    from bench import report  # here, not at the top: bench/report.py may import this module for its tables

    started = time.monotonic()
    results = {"archive_scale": measure(plan)}
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": {"name": plan.name, "rows": plan.rows},
        "machine": report.machine("-"),
        "results": results,
        "targets": targets(results["archive_scale"]),
        "runtime_s": round(time.monotonic() - started, 1),
    }


def add_to(result: dict[str, Any], plan: ScalePlan | None = None) -> None:
    """Measure the archive at scale as part of a full run: into its results and targets."""
    measured = measure(plan or SCALE_PLANS["archive"])
    result["results"]["archive_scale"] = measured
    result["targets"] += targets(measured)


def write(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """latest-archive.json and .md in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "latest-archive.json", out / "latest-archive.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        f"# Corral benchmark ({result['plan']['name']} plan, {result['timestamp']})",
        "",
        f"{m['nproc']} x {m['cpu_model']}, Linux {m['kernel']}, Python {m['python']}, corral {m['corral']}, "
        f"SQLite {sqlite3.sqlite_version}.",
        *markdown(result["results"]["archive_scale"]),
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for row in result["targets"]:
        verdict = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        lines.append(f"| {row['target']} | {row['measured'] or '-'} | {verdict} |")
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


# -- the report -------------------------------------------------------------------------------------------


def targets(archive: dict[str, Any]) -> list[dict[str, Any]]:
    rows = archive["plan"]["rows"]
    blocks = archive["build"]["blocks"]
    queries = archive["queries"]
    verdicts = []
    if len(blocks) >= 2:
        first, last = blocks[0]["rows_per_s"], blocks[-1]["rows_per_s"]
        verdicts.append(
            {
                "target": f"archive: insert rate flat from the first {blocks[0]['rows']:,} rows to the last "
                "(last block >= 80% of the first)",
                "measured": f"{first:,} -> {last:,} rows/s",
                "met": last >= 0.8 * first,
            }
        )
    for name, label in (
        ("key_day", "a search by key over one day"),
        ("text", "a text search"),
        ("usage_30d", "a 30-day usage query"),
    ):
        limit = TARGETS_MS[name]
        value = queries[name]["median_ms"]
        verdicts.append(
            {
                "target": f"archive: {label} <= {limit:g} ms at {rows:,} rows",
                "measured": f"{value:.1f} ms (median of {RUNS})",
                "met": value <= limit,
            }
        )
    dropped = archive["build"]["dropped"]
    verdicts.append(
        {
            "target": "archive: every recorded row written (none dropped) while building",
            "measured": f"{archive['build']['written']:,} written, {dropped} dropped",
            "met": dropped == 0 and archive["build"]["written"] == rows,
        }
    )
    console = archive.get("console_history", {})
    if "first_open_ms" in console:
        verdicts.append(
            {
                "target": f"console: the History screen shows its first page <= {console['target_ms']:g} ms "
                f"at {rows:,} rows",
                "measured": f"{console['first_open_ms']:.0f} ms first open, {console['reopen_median_ms']} ms "
                "again (median)",
                "met": console["within_target"],
            }
        )
    return verdicts


def markdown(archive: dict[str, Any]) -> list[str]:
    build = archive["build"]
    flush = build["flush_s"]
    lines = [
        "",
        f"## The request archive at {archive['plan']['rows']:,} rows ({archive['plan']['name']} plan)",
        "",
        f"One month file ({build['month']}) built through SqliteArchive.record and flush in {build['seconds']:g} s: "
        f"{build['written']:,} rows written, {build['dropped']} dropped; {build['file_bytes'] / 2**20:,.0f} MiB "
        f"({build['file_bytes'] / max(build['rows'], 1):,.0f} bytes a row, bodies, indexes and text index "
        f"included). record() cost {build['record_us_per_call']} µs a call on the event loop; a flush of "
        f"{FEED_ROWS:,} rows took {flush.get('median', 0):g} s (median), {flush.get('max', 0):g} s at most.",
        "",
        "| rows | seconds | rows/s |",
        "|---|---|---|",
    ]
    written = 0
    for block in build["blocks"]:
        written += block["rows"]
        lines.append(f"| {written - block['rows']:,} - {written:,} | {block['seconds']:g} | {block['rows_per_s']:,} |")
    lines += ["", "| query | rows | median ms | max ms |", "|---|---|---|---|"]
    for row in archive["queries"].values():
        count = f"{row['series']} series, {row['points']:,} points" if "series" in row else row["rows"]
        lines.append(f"| {row['label']} | {count} | {row['median_ms']:.2f} | {row['max_ms']:.2f} |")
    console = archive.get("console_history", {})
    if "first_open_ms" in console:
        lines += [
            "",
            f"The console on this month (bench/console_history.py, a real corral-core): the History screen's first "
            f"page {console['first_open_ms']:.0f} ms after F4 ({console['rows_on_first_page']} rows), "
            f"{console['reopen_median_ms']} ms when shown again (median); the Usage screen "
            f"{console['usage_first_open_ms']:.0f} ms after F5, its 90-day hourly view "
            f"{console['usage_90d_hourly_ms']:.0f} ms.",
        ]
    elif console:
        lines += ["", f"The console's History screen was not measured: {console['skipped']}."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.archive_scale", description="build one month of rows")
    parser.add_argument("directory", type=Path, help="the archive directory (a data dir's archive/)")
    parser.add_argument("rows", type=int)
    parser.add_argument("--month", help="YYYY-MM (default: last month)")
    args = parser.parse_args(argv)
    print(orjson.dumps(build_month(args.directory, args.rows, args.month), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
