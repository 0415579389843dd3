"""`corral fleet policy|pin|unpin|load|unload|on-demand`: each deployment's load policy and state, through the
OnDemand admin routes; and the policy flags `fleet deploy` shares with `fleet policy`."""

from __future__ import annotations

import argparse
import time
from typing import Any

from gateway_core.client import CorralClient
from gateway_core.client_transport import CorralError
from gateway_core.contracts.fleet_views import LoadPolicyView, OnDemandView
from gateway_core.fleet.load_policy import format_duration

from .cli_format import print_json, table
from .commands import warn
from .format import format_bytes


async def on_demand_or_none(client: CorralClient) -> list[OnDemandView]:
    """The deployments' load states; none from a daemon without models on demand, which lists containers still."""
    try:
        return await client.on_demand()
    except CorralError as error:
        if error.status != 404:
            raise
        return []


def load_column(view: OnDemandView) -> str:
    """`fleet list`'s LOAD: the state, and whether Corral starts and stops it."""
    return f"{view['state']} (on demand)" if view["policy"]["mode"] == "on-demand" else view["state"]


_POLICY_FLAGS = (
    ("idle_ttl", "idle_ttl_s"),
    ("pin", "pin"),
    ("priority", "priority"),
    ("load_timeout", "load_timeout_s"),
)


def policy_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The load policy fields the flags set (`--on-demand`, `--idle-ttl`, ...), by their spec names."""
    changes: dict[str, Any] = {"mode": args.mode} if getattr(args, "mode", None) else {}
    for option, field in _POLICY_FLAGS:
        value = getattr(args, option, None)
        if value is not None:
            changes[field] = value
    return changes


def load_field(args: argparse.Namespace) -> dict[str, Any] | None:
    """The spec's `load` for `fleet deploy`: None without --on-demand; ValueError for policy flags without it."""
    changes = policy_changes(args)
    if not changes:
        return None
    if changes.get("mode") != "on-demand":
        raise ValueError("--idle-ttl, --pin, --priority and --load-timeout set an on-demand policy: add --on-demand")
    return changes


def policy_words(policy: LoadPolicyView) -> str:
    """ "always up", or "on demand: stopped after 10m idle, priority 0, not pinned, load timeout 2m"."""
    if policy["mode"] != "on-demand":
        return "always up"
    pinned = "pinned" if policy["pin"] else "not pinned"
    return (
        f"on demand: stopped after {format_duration(policy['idle_ttl_s'])} idle, priority {policy['priority']}, "
        f"{pinned}, load timeout {format_duration(policy['load_timeout_s'])}"
    )


def _policy_short(policy: LoadPolicyView) -> str:
    if policy["mode"] != "on-demand":
        return "always"
    pinned = " pinned" if policy["pin"] else ""
    return f"on-demand idle {format_duration(policy['idle_ttl_s'])} p{policy['priority']}{pinned}"


_STATE_WORDS = {
    "cold": "cold (stopped; started by the next request for it)",
    "loading": "loading",
    "warm": "warm (running)",
    "unloading": "unloading",
    "failed": "failed",
}


def state_line(view: OnDemandView) -> str:
    """One deployment's state and policy in words; a failure's reason follows on its own lines."""
    state = _STATE_WORDS[view["state"]] if view["policy"]["mode"] == "on-demand" else view["state"]
    line = f"{view['name']}: {state}; {policy_words(view['policy'])}"
    if view["state"] == "failed" and view["reason"]:
        line += "\n" + view["reason"].rstrip()
    elif view["reason"]:
        line += f" ({view['reason']})"
    return line


def since(timestamp: float | None, now: float) -> str:
    """ "3m ago", "2h ago", "never": coarse, as a table reads best."""
    if timestamp is None:
        return "never"
    seconds = max(0.0, now - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def _last_load(view: OnDemandView, now: float) -> str:
    if view["last_load_s"] is None:
        return "-"
    return f"{view['last_load_s']:.1f}s, {since(view['last_loaded_at'], now)}"


def _memory(value: int | None) -> str:
    return format_bytes(value) if value is not None else "-"


def _show(view: OnDemandView, args: argparse.Namespace) -> int:
    if args.json:
        print_json(view)
    else:
        print(state_line(view))
    return 0


async def fleet_policy(client: CorralClient, args: argparse.Namespace) -> int:
    changes = policy_changes(args)
    if not changes:
        return _show(await client.on_demand_one(args.name), args)
    return _show(await client.set_load_policy(args.name, **changes), args)


async def fleet_pin(client: CorralClient, args: argparse.Namespace) -> int:
    return _show(await client.set_load_policy(args.name, pin=True), args)


async def fleet_unpin(client: CorralClient, args: argparse.Namespace) -> int:
    return _show(await client.set_load_policy(args.name, pin=False), args)


async def fleet_load(client: CorralClient, args: argparse.Namespace) -> int:
    return _show(await client.load_deployment(args.name), args)


async def fleet_unload(client: CorralClient, args: argparse.Namespace) -> int:
    return _show(await client.unload_deployment(args.name), args)


async def fleet_on_demand(client: CorralClient, args: argparse.Namespace) -> int:
    views = await client.on_demand()
    if args.json:
        print_json(views)
        return 0
    if not views:
        print("no deployments: deploy one with `corral fleet deploy MODEL.gguf --on-demand`")
        return 0
    now = time.time()
    rows = [
        [
            view["name"],
            view["kind"],
            view["state"],
            _policy_short(view["policy"]),
            view["in_flight"] + view["waiting"],
            since(view["last_used_at"], now),
            _last_load(view, now),
            _memory(view["measured_memory_bytes"]),
            _memory(view["estimated_memory_bytes"]),
        ]
        for view in views
    ]
    headers = ["NAME", "KIND", "STATE", "POLICY", "REQUESTS", "LAST USED", "LAST LOAD", "MEASURED", "ESTIMATE"]
    print(table(headers, rows))
    for view in views:
        if view["state"] == "failed" and view["reason"]:
            warn(f"{view['name']} failed: {view['reason'].rstrip()}")
    return 0
