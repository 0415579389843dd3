"""`corral providers drain|undrain NAME` and `corral fleet drain|undrain NAME`: maintenance without losing work.

A drained provider gets no new requests or jobs; what it holds runs to its end. The daemon keeps the drain
across restarts until it is undrained. `--wait` follows the event stream until the provider says "drained".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

from gateway_core.client import CorralClient
from gateway_core.contracts.views import ProviderView

from .cli_format import print_json
from .format import plural

Change = Callable[[CorralClient, str], Awaitable[ProviderView]]


async def providers_drain(client: CorralClient, args: argparse.Namespace) -> int:
    return await _drain(client, args, CorralClient.drain_provider, "providers")


async def providers_undrain(client: CorralClient, args: argparse.Namespace) -> int:
    return await _undrain(client, args, CorralClient.undrain_provider, "providers")


async def fleet_drain(client: CorralClient, args: argparse.Namespace) -> int:
    return await _drain(client, args, CorralClient.drain_deployment, "fleet")


async def fleet_undrain(client: CorralClient, args: argparse.Namespace) -> int:
    return await _undrain(client, args, CorralClient.undrain_deployment, "fleet")


async def _drain(client: CorralClient, args: argparse.Namespace, drain: Change, group: str) -> int:
    view = await drain(client, args.name)
    name = view["name"]
    if args.wait and view["state"] == "draining":
        try:
            view = await asyncio.wait_for(_until_drained(client, name), args.timeout)
        except TimeoutError:
            view = await client.provider(name)
            if view["state"] != "drained":
                print(
                    f"corral: provider {name} still has {plural(view['in_flight'], 'request')} in flight after "
                    f"{args.timeout:g} s; it stays draining (`corral providers list` shows it)",
                    file=sys.stderr,
                )
                return 1
    if args.json:
        print_json(view)
        return 0
    undo = f"`corral {group} undrain {name}`"
    if view["state"] == "drained":
        print(f"provider {name} is drained: nothing in flight, and no new requests or jobs until {undo}")
    else:
        print(
            f"provider {name} is draining ({plural(view['in_flight'], 'request')} in flight, left to finish): no new "
            f"requests or jobs until {undo}; --wait waits until it is drained"
        )
    return 0


async def _undrain(client: CorralClient, args: argparse.Namespace, undrain: Change, group: str) -> int:
    view = await undrain(client, args.name)
    if args.json:
        print_json(view)
    else:
        print(f"provider {view['name']} undrained: requests and jobs go to it again (state {view['state']})")
    return 0


async def _until_drained(client: CorralClient, name: str) -> ProviderView:
    """The provider's view once it says "drained", from the event stream (its snapshot first)."""
    events = client.events()
    async with contextlib.aclosing(events):
        async for event in events:
            match event:
                case ("snapshot", snapshot):
                    for provider in snapshot["providers"]:
                        if provider["name"] == name and provider["state"] != "draining":
                            return provider
                case ("provider", provider) if provider["name"] == name and provider["state"] != "draining":
                    return provider
    return await client.provider(name)  # the stream ended (the daemon stopped): what it says now


def add_drain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--wait", action="store_true", help="wait until nothing is in flight on it (drained)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="with --wait: give up after S seconds (default 600)"
    )
