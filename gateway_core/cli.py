"""`corral-core`: the gateway daemon's entry point."""

from __future__ import annotations

import argparse
import sys

from .settings import resolve_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corral-core", description="Corral's gateway daemon (runs in the foreground)."
    )
    parser.add_argument("--data-dir", help="state directory (default: $CORRAL_DATA_DIR, then XDG data home)")
    parser.add_argument("--listen", help="public API address HOST:PORT (default: $CORRAL_LISTEN, then 127.0.0.1:8800)")
    parser.add_argument("--socket", help="admin Unix socket (default: $CORRAL_SOCKET, then XDG runtime dir)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = resolve_settings(data_dir=args.data_dir, listen=args.listen, socket_path=args.socket)
    except ValueError as error:
        parser.error(str(error))
    print(
        f"corral-core: the gateway daemon is not built yet (data dir {settings.data_dir}, "
        f"listen {settings.listen_host}:{settings.listen_port}, socket {settings.socket_path})",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
