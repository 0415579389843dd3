"""`corral`: with no arguments, open the console."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway_core.settings import default_data_dir, default_socket_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corral", description="Corral's console and command line.")
    parser.add_argument("--socket", help="corral-core's admin socket (default: $CORRAL_SOCKET, then the XDG path)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    socket_path = Path(args.socket) if args.socket else default_socket_path(default_data_dir())
    from .app import CorralApp  # Textual loads only when the console opens, not for CLI subcommands.

    CorralApp(socket_path=socket_path).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
