"""The `corral daemon` subcommands' arguments; what they do is in daemon_commands.py.

They run with no corral-core answering too (status says so, logs reads the log, restart starts it), so they take
the chosen context rather than a connected client: `args.standalone(args, invocation)`.
"""

from __future__ import annotations

import argparse

from . import daemon_commands


def add_daemon_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = sub.add_parser(
        "daemon", help="corral-core itself: status, stop, restart, logs, and a systemd unit", parents=[common]
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)

    status = actions.add_parser(
        "status",
        parents=[common],
        help="is corral-core answering; its pid, version, uptime, socket, listen address and data directory",
        description="Exits 0 when corral-core answers, 1 when nobody does.",
    )
    status.add_argument("--json", action="store_true", help="print machine-readable JSON")
    status.set_defaults(standalone=daemon_commands.status)

    for name, handler, help_ in (
        (
            "stop",
            daemon_commands.stop,
            "stop corral-core (SIGTERM: requests in flight drain first) and the demo's llama-server",
        ),
        ("restart", daemon_commands.restart, "stop corral-core, then start it again as the console does"),
    ):
        verb = actions.add_parser(name, parents=[common], help=help_, description=help_)
        verb.add_argument(
            "--timeout",
            type=float,
            default=daemon_commands.STOP_TIMEOUT_S,
            metavar="S",
            help=f"how long to wait for it to stop (default {daemon_commands.STOP_TIMEOUT_S:g})",
        )
        verb.set_defaults(standalone=handler)

    logs = actions.add_parser("logs", parents=[common], help="corral-core's log (<data-dir>/corral-core.log)")
    logs.add_argument("-n", "--lines", type=_count, default=50, metavar="N", help="the last N lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="then print what is appended, until Ctrl-C")
    logs.add_argument("--data-dir", default=argparse.SUPPRESS, help="where to read it when corral-core is not running")
    logs.set_defaults(standalone=daemon_commands.logs)

    install = actions.add_parser(
        "install",
        help="write a systemd unit for corral-core (corral-core.service)",
        description="Write corral-core.service atomically and print the systemctl commands to run next. A system "
        "unit keeps its data in /var/lib/corral and its socket in /run/corral; --user ones in your data home and "
        "$XDG_RUNTIME_DIR.",
    )
    install.add_argument("--user", action="store_true", help="a unit for your user's systemd manager")
    install.add_argument("--dry-run", action="store_true", help="print the unit and where it would go; write nothing")
    install.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="its data directory (default /var/lib/corral, or yours with --user)",
    )
    install.add_argument("--listen", metavar="HOST:PORT", help="corral-core's public listener (default 127.0.0.1:8800)")
    install.add_argument(
        "--unit-socket", metavar="PATH", help="the admin socket it binds (default /run/corral/corral.sock)"
    )
    install.add_argument(
        "--unit-dir", metavar="DIR", help="write it here instead of systemd's directory (packaging, tests)"
    )
    install.set_defaults(standalone=daemon_commands.install)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines")
    return int(text)
