"""The `corral fleet …` and `corral models-dir …` argument parsers."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Literal

from gateway_core.fleet.load_policy import parse_duration

from . import drain_commands, fleet_commands, on_demand_commands

Command = Callable[..., argparse.ArgumentParser]


def _deploy_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "gguf_path", metavar="GGUF_PATH", nargs="?", help="the model file (the first part of a split model)"
    )
    parser.add_argument(
        "--router",
        metavar="MODELS_DIR",
        help="llama-server's router mode instead of one GGUF: every .gguf of the directory (mounted read-only) is "
        "a model, served by its file name and loaded on use",
    )
    parser.add_argument(
        "--models-max", type=int, metavar="N", help="with --router: models loaded at once (default 1; 0: no limit)"
    )
    parser.add_argument("--name", help="deployment, provider and public model name (default: from the file)")
    parser.add_argument("--image", help="container image (default: :server-cuda with GPUs, :server without)")
    parser.add_argument("--gpus", metavar="all|0,1|none", help="GPUs to use (default: all, or none without GPUs)")
    parser.add_argument("--ctx", type=int, metavar="N", help="context size in tokens, shared by the slots")
    parser.add_argument("--port", type=int, metavar="N", help="host port (default: the first free from 8081)")
    parser.add_argument("--parallel", type=int, metavar="N", help="parallel slots")
    parser.add_argument("--n-gpu-layers", type=int, metavar="N", help="layers to offload (default: all)")
    parser.add_argument("--arg", action="append", metavar="ARG", help="an extra llama-server argument (repeatable)")


def duration_arg(text: str) -> float:
    """Seconds from "90", "90s", "10m" or "1h30m" (the daemon's own parse_duration); exit 2 otherwise."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def tail_arg(text: str) -> int | Literal["all"]:
    """`--tail`: a count of lines, 0 or more, or "all"; exit 2 otherwise."""
    if text == "all":
        return "all"
    if text.isascii() and text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines (such as 200) or all")


def _policy_options(parser: argparse.ArgumentParser, *, changing: bool) -> None:
    """The load policy's fields; `changing`: of an existing deployment (each flag changes one field)."""
    if changing:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--on-demand", dest="mode", action="store_const", const="on-demand", help="start on use")
        mode.add_argument("--always", dest="mode", action="store_const", const="always", help="keep it always up")
    else:
        parser.add_argument(
            "--on-demand",
            dest="mode",
            action="store_const",
            const="on-demand",
            help="start it when a request for its model arrives, stop it when idle or to make room",
        )
    parser.add_argument(
        "--idle-ttl", type=duration_arg, metavar="D", help="on demand: stop it after this idle, e.g. 10m (default 10m)"
    )
    if changing:
        pin = parser.add_mutually_exclusive_group()
        pin.add_argument("--pin", dest="pin", action="store_const", const=True, help="never stop it to make room")
        pin.add_argument("--no-pin", dest="pin", action="store_const", const=False, help="let it be stopped for room")
    else:
        parser.add_argument(
            "--pin", dest="pin", action="store_const", const=True, help="on demand: never stop it to make room"
        )
    parser.add_argument(
        "--priority", type=int, metavar="N", help="on demand: the lowest is stopped first to make room (default 0)"
    )
    parser.add_argument(
        "--load-timeout", type=duration_arg, metavar="D", help="on demand: start to healthy, e.g. 2m (default 2m)"
    )


def _systemd_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", action="store_true", help="a user unit (systemctl --user) instead of a system one")
    parser.add_argument(
        "--binary",
        metavar="PATH",
        help="the llama-server binary (default: corral-core's $CORRAL_LLAMA_SERVER, then llama-server on its PATH)",
    )
    parser.add_argument("--log-dir", metavar="DIR", help="write logs to files here instead of the journal")


def add_fleet_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], command: Command, common: argparse.ArgumentParser
) -> None:
    fleet = sub.add_parser(
        "fleet", help="deploy and control llama-server containers and systemd services", parents=[common]
    )
    fsub = fleet.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(fsub, "list", fleet_commands.fleet_list, "list llama-server containers, Corral's and others", json=True)

    deploy = command(
        fsub,
        "deploy",
        fleet_commands.fleet_deploy,
        "deploy a GGUF as a llama-server and route to it once healthy",
        json=True,
    )
    _deploy_options(deploy)
    deploy.add_argument("--timeout", type=float, default=300.0, metavar="S", help="health wait (default 300)")
    deploy.add_argument("--plan", action="store_true", help="show the VRAM estimate and placement only")
    deploy.add_argument("--systemd", action="store_true", help="run a native build as a systemd service")
    deploy.add_argument("--dry-run", action="store_true", help="with --systemd: print the unit and commands only")
    _systemd_options(deploy)
    _policy_options(deploy, changing=False)

    for action, help_ in (
        ("start", "start a stopped deployment"),
        ("stop", "stop a deployment"),
        ("restart", "restart a deployment"),
    ):
        control = command(fsub, action, fleet_commands.fleet_control, help_)
        control.add_argument("name", metavar="NAME")
        control.add_argument("--systemd", action="store_true", help="a systemd deployment")
        control.add_argument("--user", action="store_true", help="with --systemd: a user unit")
    command(fsub, "remove", fleet_commands.fleet_remove, "remove a deployment and its provider").add_argument(
        "name", metavar="NAME"
    )
    _add_on_demand_commands(fsub, command)
    drain_commands.add_drain_arguments(
        command(
            fsub,
            "drain",
            drain_commands.fleet_drain,
            "send a deployment no new requests or jobs, letting those in flight finish (kept across restarts)",
            json=True,
        )
    )
    command(
        fsub, "undrain", drain_commands.fleet_undrain, "send a drained deployment requests and jobs again", json=True
    ).add_argument("name", metavar="NAME")
    logs = command(fsub, "logs", fleet_commands.fleet_logs, "show (or follow) a deployment's logs")
    logs.add_argument("name", metavar="NAME")
    logs.add_argument(
        "--tail", type=tail_arg, metavar="N|all", help="the last N lines, or all (default 200; with --since: all)"
    )
    logs.add_argument("--since", metavar="WHEN", help="with -f: lines from then on (15m, 1h, ISO time, Unix seconds)")
    logs.add_argument("--timestamps", action="store_true", help="with -f: start each line with its RFC 3339 time")
    logs.add_argument("-f", "--follow", action="store_true", help="then print new lines as they come, until Ctrl-C")

    export = command(
        fsub,
        "export-compose",
        fleet_commands.fleet_export_compose,
        "write Corral's deployments as a docker-compose.yml",
    )
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    imported = command(
        fsub,
        "import-compose",
        fleet_commands.fleet_import_compose,
        "deploy the llama-server services of a compose file",
    )
    imported.add_argument("file", metavar="FILE")
    imported.add_argument("--timeout", type=float, default=300.0, metavar="S", help="health wait per service")

    unit = command(fsub, "systemd-unit", fleet_commands.fleet_systemd_unit, "print a systemd unit for a GGUF")
    _deploy_options(unit)
    _systemd_options(unit)
    install = command(
        fsub,
        "install",
        fleet_commands.fleet_deploy,
        "install and start a systemd service for a GGUF (same as deploy --systemd)",
        json=True,
    )
    _deploy_options(install)
    _systemd_options(install)
    install.add_argument("--timeout", type=float, default=300.0, metavar="S")
    install.add_argument("--dry-run", action="store_true", help="print the unit and commands only")
    _policy_options(install, changing=False)
    install.set_defaults(systemd=True, plan=False)
    status = command(fsub, "status", fleet_commands.fleet_status, "a systemd deployment's state", json=True)
    status.add_argument("name", metavar="NAME")
    status.add_argument("--user", action="store_true")

    models_dir = sub.add_parser("models-dir", help="find GGUF models on this box", parents=[common])
    msub = models_dir.add_subparsers(dest="action", metavar="ACTION", required=True)
    scan = command(
        msub,
        "scan",
        fleet_commands.models_dir_scan,
        "list GGUF models with their architecture, size and quantization",
        json=True,
    )
    scan.add_argument("dirs", nargs="*", metavar="DIR", help="directories (default: $CORRAL_MODELS_DIRS)")


def _add_on_demand_commands(fsub: argparse._SubParsersAction[argparse.ArgumentParser], command: Command) -> None:
    """The load policy and state of existing deployments: `policy`, `pin`, `unpin`, `load`, `unload`, `on-demand`."""
    policy = command(
        fsub,
        "policy",
        on_demand_commands.fleet_policy,
        "show or change a deployment's load policy (kept across restarts; wins over the one it was deployed with)",
        json=True,
    )
    policy.add_argument("name", metavar="NAME")
    _policy_options(policy, changing=True)
    for action, handler, help_ in (
        ("pin", on_demand_commands.fleet_pin, "never stop an on-demand deployment to make room for another"),
        ("unpin", on_demand_commands.fleet_unpin, "let an on-demand deployment be stopped to make room again"),
        ("load", on_demand_commands.fleet_load, "start a deployment now (making room on its GPUs) and wait until warm"),
        ("unload", on_demand_commands.fleet_unload, "stop a deployment once its requests in flight end"),
    ):
        command(fsub, action, handler, help_, json=True).add_argument("name", metavar="NAME")
    command(
        fsub,
        "on-demand",
        on_demand_commands.fleet_on_demand,
        "each deployment's load state, policy, last use, last load time and memory",
        json=True,
    )
