"""`corral gpus` and `corral fleet …`: the box's GPUs and llama-server deployments, through CorralClient."""

from __future__ import annotations

import argparse
from typing import Any

from gateway_core.client import CorralClient

from .cli_format import dash, print_json, table

GIB = 1024**3


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.1f}"


def _gpu_row(device: dict[str, Any]) -> list[object]:
    used, total = device["memory_used_bytes"], device["memory_total_bytes"]
    power = device["power_draw_watts"]
    limit = device["power_limit_watts"]
    processes = ", ".join(f"{p['name'] or '?'}({p['pid']})" for p in device["processes"]) or "-"
    return [
        device["index"],
        device["name"],
        f"{dash(device['utilization_percent'])}%" if device["utilization_percent"] is not None else "-",
        f"{_gib(used)}/{_gib(total)} GiB",
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
    print(table(["GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "PROCESSES"],
                [_gpu_row(device) for device in snapshot["devices"]]))
    return 0
