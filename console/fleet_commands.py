"""`corral gpus` and `corral fleet …`: the box's GPUs and llama-server deployments, through CorralClient."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, Literal

from gateway_core.client import CorralClient
from gateway_core.contracts.fleet_views import ContainerView, GpuDeviceView, OnDemandView, PlanReport

from .cli_format import print_json, table
from .commands import warn
from .format import dash, duration, format_bytes, gib, plan_headline, plan_lines
from .on_demand_commands import load_column, load_field, on_demand_or_none, state_line


def _gpu_row(device: GpuDeviceView) -> list[object]:
    used, total = device["memory_used_bytes"], device["memory_total_bytes"]
    power = device["power_draw_watts"]
    limit = device["power_limit_watts"]
    processes = ", ".join(f"{p['name'] or '?'}({p['pid']})" for p in device["processes"]) or "-"
    return [
        device["index"],
        device["name"],
        f"{dash(device['utilization_percent'])}%" if device["utilization_percent"] is not None else "-",
        f"{gib(used)}/{gib(total)} GiB",
        f"{device['temperature_c']}°C" if device["temperature_c"] is not None else "-",
        f"{power:.0f}/{limit:.0f} W" if power is not None and limit is not None else dash(power),
        processes,
    ]


async def gpus(client: CorralClient, args: argparse.Namespace) -> int:
    snapshot = await client.gpus()
    if args.json:
        print_json(snapshot)
        return 0
    if snapshot["state"] != "ok":
        print(f"GPUs unavailable: {snapshot['reason']}")
        return 0
    print(f"driver {snapshot['driver_version']}")
    print(
        table(
            ["GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "PROCESSES"],
            [_gpu_row(device) for device in snapshot["devices"]],
        )
    )
    return 0


# -- fleet ----------------------------------------------------------------------------------------------


def _deployment_row(info: ContainerView, loads: dict[str, OnDemandView]) -> list[object]:
    uptime = duration(info["uptime_s"])
    model = Path(info["model"]).name if info["model"] else "-"
    load = loads.get(info["name"]) if info["managed"] else None
    return [
        info["name"],
        "yes" if info["managed"] else "no",
        info["state"],
        info["health"],
        load_column(load) if load is not None else "-",
        model,
        info["gpus"],
        dash(info["port"]),
        uptime,
        info["image"],
    ]


async def fleet_list(client: CorralClient, args: argparse.Namespace) -> int:
    data = await client.fleet()
    if args.json:
        print_json(data)
        return 0
    loads = {view["name"]: view for view in await on_demand_or_none(client)}
    rows = [_deployment_row(info, loads) for info in data["deployments"]]
    rows += [_systemd_row(view) for view in loads.values() if view["kind"] == "systemd"]
    if data["engine"]["state"] != "ok":
        print(f"containers unavailable: {data['engine']['reason']}")
    elif not rows:
        print("no llama-server containers: deploy one with `corral fleet deploy MODEL.gguf`")
    if rows:
        print(table(["NAME", "MANAGED", "STATE", "HEALTH", "LOAD", "MODEL", "GPUS", "PORT", "UPTIME", "IMAGE"], rows))
    return 0


def _systemd_row(view: OnDemandView) -> list[object]:
    """A systemd deployment (no container to list): its name and load state; `fleet status NAME` shows the unit."""
    gpus = ",".join(map(str, view["gpus"])) or "none"
    return [view["name"], "yes", "systemd", "-", load_column(view), "-", gpus, "-", "-", "(systemd unit)"]


def deploy_fields(args: argparse.Namespace) -> dict[str, Any]:
    router, models_max = getattr(args, "router", None), getattr(args, "models_max", None)
    # Usage errors, as argparse's: exit 2 before anything is asked of the daemon.
    if (router is None) == (args.gguf_path is None):
        warn("give a GGUF_PATH, or --router MODELS_DIR for llama-server's router mode (not both)")
        raise SystemExit(2)
    if router is None and models_max is not None:
        warn("--models-max goes with --router MODELS_DIR")
        raise SystemExit(2)
    fields: dict[str, Any] = {"model_path": str(Path(router or args.gguf_path).expanduser().resolve())}
    if router is not None:
        fields["router"] = {"models_max": 1 if models_max is None else models_max}
    for option, field in (
        ("name", "name"),
        ("image", "image"),
        ("gpus", "gpus"),
        ("ctx", "ctx_size"),
        ("port", "port"),
        ("parallel", "parallel"),
        ("n_gpu_layers", "n_gpu_layers"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            fields[field] = value
    if getattr(args, "arg", None):
        fields["extra_args"] = args.arg
    return fields


def _print_plan(report: PlanReport) -> None:
    for line in plan_lines(report):
        print(line)
    for warning in report["warnings"]:
        warn(f"warning: {warning}")


async def fleet_deploy(client: CorralClient, args: argparse.Namespace) -> int:
    fields = deploy_fields(args)
    try:
        load = load_field(args)
    except ValueError as error:
        warn(str(error))
        return 2
    if load is not None:
        fields["load"] = load
    if args.systemd or args.dry_run:
        fields["kind"] = "systemd" if args.systemd else "container"
    if args.plan:
        report = await client.plan_deployment(**fields)
        if args.json:
            print_json(report)
        else:
            print(plan_headline(report["spec"]))
            _print_plan(report)
        return 0
    if args.systemd:
        fields["systemd"] = {"user": args.user, "binary": args.binary, "log_dir": args.log_dir, "dry_run": args.dry_run}
    result = await client.deploy(health_timeout_s=args.timeout, **fields)
    if args.json:
        print_json(result)
        return 0
    if "dry_run" in result:
        print("\n".join(result["dry_run"]))
        return 0
    deployment = result["deployment"]
    served = (
        f"its models served by their file names (`corral providers models {deployment['name']}`)"
        if "router" in fields
        else f"served as model '{deployment['name']}'"
    )
    if load is None:
        print(
            f"deployed {deployment['name']}: healthy on port {deployment.get('port') or fields.get('port')}, {served}"
        )
    else:
        view = await client.on_demand_one(deployment["name"])
        print(f"deployed {deployment['name']}, {served}")
        print(state_line(view))
    _print_plan(result)
    return 0


async def fleet_control(client: CorralClient, args: argparse.Namespace) -> int:
    if getattr(args, "systemd", False):
        await client.systemd_action(args.name, args.action, user=args.user)
        print(f"{args.action}: corral-{args.name}.service")
        return 0
    info = await client.control_deployment(args.name, args.action)
    print(f"{info['name']}: {info['state']}")
    return 0


async def fleet_remove(client: CorralClient, args: argparse.Namespace) -> int:
    await client.remove_deployment(args.name)
    print(f"removed {args.name} and its provider")
    return 0


async def fleet_logs(client: CorralClient, args: argparse.Namespace) -> int:
    """The last lines (`--tail`, or those `--since`), then, with `-f`, new ones as they come. An unreadable
    --since is corral-core's 400, which names what it reads."""
    tail: int | Literal["all"] | None = args.tail
    if not args.follow:
        if args.since is not None or args.timestamps or tail == "all":
            warn("--since, --timestamps and --tail all need -f (follow); without it, use --tail N")
            return 2
        sys.stdout.write(await client.deployment_logs(args.name, 200 if tail is None else tail))
        return 0
    lines = client.follow_logs(args.name, tail=tail, since=args.since, timestamps=args.timestamps)
    async for line in lines:
        print(line, flush=True)
    return 0


async def fleet_status(client: CorralClient, args: argparse.Namespace) -> int:
    status = await client.systemd_action(args.name, "status", user=args.user)
    if args.json:
        print_json(status)
    else:
        print(
            f"{status['unit']}: {status['active_state']} ({status['sub_state']}), pid {dash(status['main_pid'])}, "
            f"restarts {status['restarts']}"
        )
    return 0 if status["running"] else 1


async def fleet_export_compose(client: CorralClient, args: argparse.Namespace) -> int:
    text = await client.export_compose()
    if args.output:
        await asyncio.to_thread(Path(args.output).write_text, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def fleet_import_compose(client: CorralClient, args: argparse.Namespace) -> int:
    try:
        text = await asyncio.to_thread(Path(args.file).read_text)
    except OSError as error:
        warn(f"cannot read {args.file}: {error.strerror}")
        return 1
    result = await client.import_compose(text, health_timeout_s=args.timeout)
    for warning in result["warnings"]:
        warn(f"warning: {warning}")
    print(f"deployed {len(result['deployed'])}: {', '.join(result['deployed']) or '-'}")
    return 0


async def fleet_systemd_unit(client: CorralClient, args: argparse.Namespace) -> int:
    fields = deploy_fields(args)
    fields["systemd"] = {"user": args.user, "binary": args.binary, "log_dir": args.log_dir}
    sys.stdout.write(await client.systemd_unit(**fields))
    return 0


def _absolute(directories: list[str]) -> list[str]:
    """The daemon has a working directory of its own: a relative DIR means one relative to the user's."""
    return [str(Path(directory).expanduser().resolve()) for directory in directories]


async def models_dir_scan(client: CorralClient, args: argparse.Namespace) -> int:
    result = await client.catalog(_absolute(args.dirs) or None)
    if args.json:
        print_json(result)
        return 0
    rows = [
        [
            m["name"],
            m["architecture"],
            _params(m["parameter_count"]),
            m["quantization"],
            dash(m["context_length"]),
            format_bytes(m["file_size"]),
            len(m["parts"]),
            m["path"],
        ]
        for m in result["models"]
    ]
    if rows:
        print(table(["NAME", "ARCH", "PARAMS", "QUANT", "CTX", "SIZE", "PARTS", "PATH"], rows))
    else:
        print(f"no GGUF models in {', '.join(result['directories'])}")
    for problem in result["problems"]:
        warn(f"{problem['path']}: {problem['message']}")
    return 0


def _params(count: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)
