"""`corral-core`: the gateway daemon, in the foreground (systemd runs it like this)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine

from gateway_core.server import DRAIN_TIMEOUT_S, DaemonError, serve
from gateway_core.settings import resolve_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral-core", description="Corral's gateway daemon (runs in the foreground)."
    )
    parser.add_argument("--data-dir", help="state directory (default: $CORRAL_DATA_DIR, then XDG data home)")
    parser.add_argument("--listen", help="public API address HOST:PORT (default: $CORRAL_LISTEN, then 127.0.0.1:8800)")
    parser.add_argument("--socket", help="admin Unix socket (default: $CORRAL_SOCKET, then XDG runtime dir)")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=DRAIN_TIMEOUT_S,
        help="seconds to let requests in flight finish after SIGTERM (default: %(default)s)",
    )
    parser.add_argument(
        "--gpu-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often to sample GPU telemetry (default: %(default)s)",
    )
    return parser


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
    try:
        _run(serve(settings, drain_timeout_s=args.drain_timeout, gpu_interval_s=args.gpu_interval))
    except DaemonError as error:
        logging.getLogger("corral.core").error("corral-core cannot start: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
