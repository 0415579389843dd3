"""The `corral history …` and `corral usage` argument parsers.

Times, months and status filters are read here, as the daemon reads them (gateway_core/contracts/instants.py),
so a bad one is a usage error (exit 2) saying what is accepted, before anything is sent. Relative times ("7d")
are read against this box's clock once, so every page of one search covers the same range.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from gateway_core.contracts.instants import InstantError, check_month, parse_instant

from . import history_commands
from .arg_types import positive_int
from .screens.history_filter import FilterError, check_status

Command = Callable[..., argparse.ArgumentParser]
TIME_HELP = "a duration before now (7d, 36h), a date (2026-11-03), an ISO 8601 time or Unix seconds"


def instant(text: str) -> float:
    try:
        return parse_instant(text, time.time())
    except InstantError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def month(text: str) -> str:
    try:
        return check_month(text)
    except InstantError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def status(text: str) -> str:
    try:
        return check_status(text)
    except FilterError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", metavar="K", help="a key's id or name")
    parser.add_argument("--model", metavar="M", help="the public model asked for")
    parser.add_argument("--provider", metavar="P", help="the provider that answered")
    parser.add_argument("--status", type=status, metavar="S", help="a code (200, 429), 4xx, 5xx, ok or error")
    parser.add_argument("--since", type=instant, metavar="T", help=f"from: {TIME_HELP}")
    parser.add_argument("--until", type=instant, metavar="T", help=f"to: {TIME_HELP}")
    parser.add_argument("--text", metavar="Q", help="full-text search over the bodies (SQLite FTS5 syntax)")
    parser.add_argument("--limit", type=positive_int, default=100, metavar="N", help="at most N rows (default 100)")


def add_history_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], command: Command) -> None:
    # `corral history [filters]` lists; `corral history show|export|prune …` are its actions.
    listing = command(sub, "history", history_commands.history, "archived requests, newest first", json=True)
    _filters(listing)
    actions = listing.add_subparsers(dest="action", metavar="ACTION")
    show = command(actions, "show", history_commands.history_show, "one archived request with its bodies", json=True)
    show.add_argument("id", metavar="ID", help="the request id (the x-request-id header), req_…")
    export = command(actions, "export", history_commands.history_export, "write one month's rows, bodies included")
    export.add_argument("--month", type=month, required=True, metavar="YYYY-MM")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="default jsonl")
    export.add_argument("--output", "-o", metavar="FILE", help="write here (atomically) instead of stdout")
    prune = command(
        actions,
        "prune",
        history_commands.history_prune,
        "remove every archived month before a month (moved to archive/old/ or deleted, as corral-core says)",
        json=True,
    )
    prune.add_argument("--before", type=month, required=True, metavar="YYYY-MM")
    prune.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    usage = command(
        sub,
        "usage",
        history_commands.usage,
        "requests, tokens, errors, latency, GPU time and energy per key, model or provider over time",
        json=True,
    )
    usage.add_argument("--by", choices=("key", "model", "provider"), default="key", help="default key")
    usage.add_argument("--since", type=instant, default="7d", metavar="T", help=f"from (default 7d): {TIME_HELP}")
    usage.add_argument("--until", type=instant, metavar="T", help=f"to (default now): {TIME_HELP}")
    usage.add_argument("--bucket", choices=("hour", "day"), default="day", help="default day")
