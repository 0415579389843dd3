"""`corral-core`: the gateway daemon, in the foreground (systemd runs it like this)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import re
import sys
from collections.abc import Coroutine
from pathlib import Path

from gateway_core.archive.settings import ArchiveSettings
from gateway_core.callbacks.settings import CallbackSettings
from gateway_core.contracts.archive import CAPTURE_MODES
from gateway_core.fleet.on_demand import DEFAULT_MARGIN_BYTES
from gateway_core.fleet.units import MiB
from gateway_core.gateway.pipeline import WARMING_KEEPALIVE_S
from gateway_core.jobs.settings import DEFAULT_JOB_ATTEMPTS, DEFAULT_JOB_TIMEOUT_S, DEFAULT_QUEUE_SHARE, JobSettings
from gateway_core.listener import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    KEEP_ALIVE_S,
    ListenerLimits,
    default_max_connections,
    raise_open_file_limit,
)
from gateway_core.server import DRAIN_TIMEOUT_S, DaemonError, serve
from gateway_core.settings import resolve_settings

log = logging.getLogger("corral.core")


def _seconds(text: str, *, zero_ok: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
        wanted = (
            "a number of seconds, 0 or more (such as 30)"
            if zero_ok
            else "a number of seconds above 0 (such as 30 or 2.5)"
        )
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    return _seconds(text, zero_ok=False)


def seconds_or_zero(text: str) -> float:
    return _seconds(text, zero_ok=True)


def positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number greater than 0 (such as 4096), got {text!r}")
    return value


ARCHIVE_DEFAULTS = ArchiveSettings(directory=Path("archive"))  # the flags' defaults are the settings' own
_SIZE = re.compile(r"^(\d+)\s*(|b|k|kb|kib|m|mb|mib)$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(|s|m|h)$", re.IGNORECASE)
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """Seconds, with an optional unit: 90, 90s, 20m, 1.5h."""
    match = _DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration above 0 such as 90s, 20m or 1h, got {text!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1 (such as 0.5), got {text!r}")
    return value


def body_size(text: str) -> int:
    """Bytes, with an optional unit: 65536, 64KiB, 1MiB (k and m are binary here, as for every size in Corral)."""
    match = _SIZE.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"expected a size above 0 such as 65536, 64KiB or 1MiB, got {text!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


def json_path(text: str) -> str:
    """A dotted JSON path to redact: `user`, `metadata.*`, `messages.*.content`."""
    parts = text.strip().split(".")
    if not text.strip() or any(not part for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected a dotted JSON path such as user, metadata.email or messages.*.content, got {text!r}"
        )
    return text.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral-core", description="Corral's gateway daemon (runs in the foreground)."
    )
    parser.add_argument("--data-dir", help="state directory (default: $CORRAL_DATA_DIR, then XDG data home)")
    parser.add_argument("--listen", help="public API address HOST:PORT (default: $CORRAL_LISTEN, then 127.0.0.1:8800)")
    parser.add_argument("--socket", help="admin Unix socket (default: $CORRAL_SOCKET, then XDG runtime dir)")
    parser.add_argument(
        "--drain-timeout",
        type=seconds_or_zero,
        default=DRAIN_TIMEOUT_S,
        help="seconds to let requests in flight finish after SIGTERM; 0 stops at once (default: %(default)s)",
    )
    parser.add_argument(
        "--gpu-interval",
        type=positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="how often to sample GPU telemetry (default: %(default)s)",
    )
    listener = parser.add_argument_group(
        "public listener", "what a client connection may take, and how many may be open"
    )
    listener.add_argument(
        "--header-timeout",
        type=positive_seconds,
        default=HEADER_TIMEOUT_S,
        metavar="SECONDS",
        help="a request's headers must arrive within this, else 408 and close (default: %(default)g)",
    )
    listener.add_argument(
        "--body-timeout",
        type=positive_seconds,
        default=BODY_TIMEOUT_S,
        metavar="SECONDS",
        help="a request's body must arrive within this after its headers, else 408 and close (default: %(default)g)",
    )
    listener.add_argument(
        "--keep-alive-timeout",
        type=positive_seconds,
        default=KEEP_ALIVE_S,
        metavar="SECONDS",
        help="close a connection idle this long between requests (default: %(default)g)",
    )
    listener.add_argument(
        "--max-connections",
        type=positive_count,
        metavar="N",
        help="open connections past which new ones are answered 503 (default: min(10000, (open-file limit - 256) "
        "// 2), after raising the soft open-file limit to the hard one)",
    )
    archive = parser.add_argument_group(
        "request archive", "every request in <data-dir>/archive/YYYY-MM.sqlite (one file per month, UTC)"
    )
    archive.add_argument(
        "--capture",
        choices=CAPTURE_MODES,
        default="full",
        help="what is kept of each request: off (nothing), metadata (the row, no bodies) or full (with bodies); "
        "a key's own setting overrides it (default: %(default)s)",
    )
    archive.add_argument(
        "--archive-body-cap",
        type=body_size,
        default=ARCHIVE_DEFAULTS.body_cap,
        metavar="SIZE",
        help="each stored body is cut at this size, and says so (default: 64KiB)",
    )
    archive.add_argument(
        "--redact",
        type=json_path,
        action="append",
        default=[],
        metavar="PATH",
        help='a JSON field replaced by "[redacted]" before bodies are stored; dotted, * for any key or item '
        "(user, metadata.*, messages.*.content); repeat for more",
    )
    archive.add_argument(
        "--retain-months",
        type=positive_count,
        metavar="N",
        help="keep the N most recent months (this one included) and prune older ones (default: keep everything)",
    )
    archive.add_argument(
        "--pruned",
        choices=("move", "delete"),
        default="move",
        help="what pruning does with a month's file: move it to archive/old/ or delete it (default: %(default)s)",
    )
    archive.add_argument(
        "--archive-writer",
        choices=("process", "thread"),
        default="process",
        help="where the archive's writer runs: a process of its own, so its work never slows the event loop, or a "
        "thread of corral-core (default: %(default)s)",
    )
    archive.add_argument(
        "--archive-queue",
        type=positive_count,
        default=ARCHIVE_DEFAULTS.queue_rows,
        metavar="ROWS",
        help="rows held in memory for the writer; past it, rows are dropped and counted (default: %(default)s)",
    )
    queue = parser.add_argument_group(
        "job queue", "queued requests (POST /v1/queue/...), kept in <data-dir>/jobs.sqlite and run on free capacity"
    )
    queue.add_argument(
        "--queue-share",
        type=share,
        default=DEFAULT_QUEUE_SHARE,
        metavar="FRACTION",
        help="while synchronous requests wait for a slot, jobs hold at most this share of each provider's slots "
        "(default: %(default)s)",
    )
    queue.add_argument(
        "--job-timeout",
        type=duration,
        default=DEFAULT_JOB_TIMEOUT_S,
        metavar="DURATION",
        help="an attempt running longer than this is cancelled and the job fails; time queued does not count "
        "(90s, 20m, 1h; default: 20m)",
    )
    queue.add_argument(
        "--job-attempts",
        type=positive_count,
        default=DEFAULT_JOB_ATTEMPTS,
        metavar="N",
        help="attempts a job gets (each failed one goes to another provider of the model when there is one) "
        "before it fails (default: %(default)s)",
    )
    fleet = parser.add_argument_group(
        "models on demand",
        "deployments started when a request arrives and stopped when idle (fleet deploy --on-demand)",
    )
    fleet.add_argument(
        "--vram-margin",
        type=mebibytes,
        default=DEFAULT_MARGIN_BYTES // MiB,
        metavar="MIB",
        help="GPU memory kept free on each GPU when judging whether an on-demand model fits; below it, idle "
        "on-demand deployments are stopped to make room (default: %(default)s)",
    )
    fleet.add_argument(
        "--load-keepalive",
        type=duration,
        default=WARMING_KEEPALIVE_S,
        metavar="DURATION",
        help="a stream waiting this long for its model to load is answered at once, with an SSE comment as often "
        "until the model answers, so proxies do not cut it (default: 5s)",
    )
    CallbackSettings.add_arguments(parser)
    return parser


def mebibytes(text: str) -> int:
    """--vram-margin: whole MiB, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of MiB, such as 512") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a margin is 0 MiB or more")
    return value * MiB


def job_settings(args: argparse.Namespace) -> JobSettings:
    return JobSettings(queue_share=args.queue_share, job_timeout_s=args.job_timeout, job_attempts=args.job_attempts)


def archive_settings(args: argparse.Namespace, data_dir: Path) -> ArchiveSettings:
    return ArchiveSettings(
        directory=data_dir / "archive",
        capture=args.capture,
        body_cap=args.archive_body_cap,
        redact=tuple(args.redact),
        queue_rows=args.archive_queue,
        retain_months=args.retain_months,
        pruned=args.pruned,
        writer=args.archive_writer,
    )


def listener_limits(args: argparse.Namespace) -> ListenerLimits:
    """The public listener's limits; raises the open-file soft limit first, which the default cap is derived from."""
    open_files = raise_open_file_limit()
    fitting = default_max_connections(open_files)
    if args.max_connections is not None and args.max_connections > fitting:
        log.warning(
            "--max-connections %d is more than the open-file limit (%d) leaves room for (%d, at two descriptors "
            "per proxied request): raise the limit (LimitNOFILE= in a systemd unit, ulimit -n) or the daemon may "
            "fail to accept or to reach providers under load",
            args.max_connections,
            open_files,
            fitting,
        )
    return ListenerLimits(
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        keep_alive_s=args.keep_alive_timeout,
        max_connections=fitting if args.max_connections is None else args.max_connections,
    )


def _run(coroutine: Coroutine[object, object, None]) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional on platforms without wheels
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = resolve_settings(data_dir=args.data_dir, listen=args.listen, socket_path=args.socket)
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call would drown the log
    limits = listener_limits(args)
    try:
        _run(
            serve(
                settings,
                drain_timeout_s=args.drain_timeout,
                gpu_interval_s=args.gpu_interval,
                limits=limits,
                archive=archive_settings(args, settings.data_dir),
                jobs=job_settings(args),
                callbacks=CallbackSettings.from_args(args),
                vram_margin_bytes=args.vram_margin,
                load_keepalive_s=args.load_keepalive,
            )
        )
    except DaemonError as error:
        log.error("corral-core cannot start: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
