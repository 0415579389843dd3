"""`corral-core`: the gateway daemon, in the foreground (systemd runs it like this)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
from collections.abc import Coroutine

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
    return parser


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
        _run(serve(settings, drain_timeout_s=args.drain_timeout, gpu_interval_s=args.gpu_interval, limits=limits))
    except DaemonError as error:
        log.error("corral-core cannot start: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
