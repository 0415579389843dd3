"""`corral history …` and `corral usage`: the request archive and usage over time, through CorralClient.

The daemon searches, caps, rolls up and prunes; these commands ask and print. Times and months were read by
the argument parser (history_cli.py), so a bad one is a usage error before anything is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

from gateway_core.client import CorralClient
from gateway_core.contracts.history_views import HistoryRowView, UsagePoint, UsageSeries

from .cli_format import print_json, table
from .format import (
    body_heading,
    count,
    dash,
    energy,
    format_bytes,
    gpu_time,
    history_facts,
    latency,
    pretty_json,
    rate,
    response_shown,
    tokens,
    utc_time,
)
from .screens.history_filter import HistoryFilter

PAGE_ROWS = 500  # rows asked per page when --limit is larger; the daemon may answer fewer and a cursor
USAGE_ERROR = 2


# -- history ----------------------------------------------------------------------------------------------


def history_row(row: HistoryRowView) -> list[object]:
    return [
        utc_time(row["started_at"]),
        row["id"],
        row["key_name"] or row["key_id"] or "-",
        dash(row["model"]),
        dash(row["provider"]),
        row["status"],
        tokens(row),
        latency(row["latency_s"]),
        latency(row["ttft_s"]),
        energy(row["energy_joules"]),
    ]


HISTORY_HEADERS = ["TIME (UTC)", "ID", "KEY", "MODEL", "PROVIDER", "STATUS", "TOKENS", "LATENCY", "TTFT", "ENERGY"]


def history_filter(args: argparse.Namespace) -> HistoryFilter:
    return HistoryFilter(
        key=args.key,
        model=args.model,
        provider=args.provider,
        status=args.status,
        since=args.since,
        until=args.until,
        text=args.text,
    )


async def history(client: CorralClient, args: argparse.Namespace) -> int:
    rows: list[HistoryRowView] = []
    cursor: str | None = None
    filters = history_filter(args)
    while len(rows) < args.limit:  # bounded: each page is at least one row, or the cursor ends it
        page = await filters.fetch(client, limit=min(PAGE_ROWS, args.limit - len(rows)), cursor=cursor)
        rows.extend(page["rows"])
        cursor = page["next_cursor"]
        if cursor is None or not page["rows"]:
            break
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no archived requests match: widen --since, or drop a filter")
        return 0
    print(table(HISTORY_HEADERS, [history_row(row) for row in rows]))
    return 0


async def history_show(client: CorralClient, args: argparse.Namespace) -> int:
    entry = await client.history_entry(args.id)
    if args.json:
        print_json(entry)
        return 0
    pairs = history_facts(entry)
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        print(f"{name.ljust(width)}  {value}")
    request = entry["request_body"]
    print()
    print(body_heading("request body", request, entry["request_bytes"], entry["request_truncated"], entry["capture"]))
    if request is not None:
        print(pretty_json(request))
    print()
    response = entry["response_body"]
    what = "response (the answer's text)" if entry["response_format"] == "text" else "response"
    print(body_heading(what, response, entry["response_bytes"], entry["response_truncated"], entry["capture"]))
    shown = response_shown(entry)
    if shown is not None:
        print(shown)
    return 0


class AtomicFile:
    """A file written beside its target and renamed over it once complete: a failed export leaves no half file."""

    def __init__(self, target: str) -> None:
        self.target = Path(target).expanduser()
        descriptor, self.temporary = tempfile.mkstemp(
            prefix=f".{self.target.name}.", suffix=".part", dir=self.target.parent
        )
        self.out = os.fdopen(descriptor, "wb")

    def commit(self) -> int:
        """Make the file the target; returns its size."""
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()
        os.replace(self.temporary, self.target)
        return self.target.stat().st_size

    def discard(self) -> None:
        self.out.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temporary)


async def history_export(client: CorralClient, args: argparse.Namespace) -> int:
    pieces = client.export_history(args.month, args.format)
    if args.output is None:
        out = sys.stdout.buffer
        async for piece in pieces:  # written as they come: the month is never held in memory
            out.write(piece)
        out.flush()
        return 0
    try:
        file = AtomicFile(args.output)
    except OSError as error:
        print(f"corral: cannot write {args.output}: {error.strerror}; pick another --output", file=sys.stderr)
        return 1
    try:
        async for piece in pieces:
            file.out.write(piece)
        size = file.commit()
    except OSError as error:
        file.discard()
        print(
            f"corral: writing {args.output} failed: {error.strerror}; free some space or pick another --output",
            file=sys.stderr,
        )
        return 1
    except BaseException:
        file.discard()
        raise
    print(f"exported {args.month} as {args.format} to {file.target} ({format_bytes(size)})", file=sys.stderr)
    return 0


def confirmed(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


async def history_prune(client: CorralClient, args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"corral: not pruning: stdin is not a terminal to confirm on; run `corral history prune --before "
                f"{args.before} --yes` to remove every month before {args.before}",
                file=sys.stderr,
            )
            return USAGE_ERROR
        question = (
            f"Remove every archived month before {args.before} (their files are moved to archive/old/ or deleted, "
            "as corral-core's --pruned setting says)?"
        )
        if not confirmed(question):
            print("nothing removed")
            return 0
    answer = await client.prune_history(args.before)
    if args.json:
        print_json(answer)
        return 0
    months = answer["months"]
    if not months:
        print(f"no archived month before {answer['before']}: nothing removed")
    elif answer["action"] == "moved":
        print(f"moved {len(months)} month(s) to {answer['moved_to']}: {', '.join(months)}")
    else:
        print(f"deleted {len(months)} month(s): {', '.join(months)}")
    return 0


# -- usage ------------------------------------------------------------------------------------------------


USAGE_HEADERS = ["REQUESTS", "ERRORS", "TOKENS", "P50", "P95", "TTFT P50", "TOK/S", "GPU TIME", "ENERGY"]


def usage_cells(point: UsagePoint) -> list[object]:
    return [
        count(point["requests"]),
        count(point["errors"]),
        tokens(point),
        latency(point["latency_p50_s"]),
        latency(point["latency_p95_s"]),
        latency(point["ttft_p50_s"]),
        rate(point["tokens_per_s"], ""),
        gpu_time(point["gpu_seconds"]),
        energy(point["energy_joules"]),
    ]


def series_label(series: UsageSeries, by: str) -> str:
    label = f"{by} {series['group']}"
    if series["group_id"] and series["group_id"] != series["group"]:
        label += f" (id {series['group_id']})"
    return label


async def usage(client: CorralClient, args: argparse.Namespace) -> int:
    view = await client.usage(by=args.by, since=args.since, until=args.until, bucket=args.bucket)
    if args.json:
        print_json(view)
        return 0
    span = f"{utc_time(view['since'], seconds=False)} to {utc_time(view['until'], seconds=False)} UTC"
    if not view["series"]:
        print(f"no requests from {span}: widen --since")
        return 0
    print(f"usage by {view['by']}, {span}, per {view['bucket']}")
    print()
    print(table(["GROUP", *USAGE_HEADERS], [[s["group"], *usage_cells(s["total"])] for s in view["series"]]))
    bucket_seconds = view["bucket"] == "hour"
    for series in view["series"]:
        print()
        print(series_label(series, view["by"]))
        rows = [["total", *usage_cells(series["total"])]]
        rows += [
            [utc_time(point["bucket_start"], seconds=False)[: 16 if bucket_seconds else 10], *usage_cells(point)]
            for point in series["points"]
        ]
        print(table(["BUCKET", *USAGE_HEADERS], rows))
    return 0
