"""What a router-mode llama-server lists: whether a llama-server is a router, each model's status and slots,
and the router's capacity (the probe reads these from its `/props` and `GET /models`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
import orjson

from gateway_core.contracts.views import RouterModelStatus, RouterModelView

from .upstream import TRANSPORT_ERRORS

AUTO_PARALLEL_SLOTS = 4  # a model's slots when its argv has no --parallel (llama-server's "auto" in this build)
_STATUSES: dict[str, RouterModelStatus] = {
    "unloaded": "unloaded",
    "loading": "loading",
    "loaded": "loaded",
    "sleeping": "sleeping",
    "failed": "failed",
}
SERVING: frozenset[str] = frozenset({"loaded", "sleeping"})  # a sleeping model wakes on the request itself


def is_router(props: Mapping[str, Any], listed: Iterable[Mapping[str, Any]]) -> bool:
    """A router-mode llama-server: `/props` says role router, or its model list carries a status per model."""
    if props.get("role") == "router":
        return True
    entries = list(listed)
    return len(entries) > 1 and all(isinstance(entry.get("status"), dict) for entry in entries)


def model_views(listed: Iterable[Mapping[str, Any]]) -> list[RouterModelView]:
    """The router's `GET /models` entries as views, in its order. This build marks a model that failed to load
    as `{"value": "unloaded", "failed": true, "exit_code": N}`; a build that says "failed" is read the same."""
    views: list[RouterModelView] = []
    for entry in listed:
        status = entry.get("status")
        raw = status.get("value") if isinstance(status, dict) else None
        value = _STATUSES.get(raw, "unloaded") if isinstance(raw, str) else "unloaded"
        detail = ""
        failed = isinstance(status, dict) and (status.get("failed") is True or value == "failed")
        if failed and isinstance(status, dict) and value not in ("loading", "loaded", "sleeping"):
            value = "failed"
            code = status.get("exit_code")
            detail = f"its llama-server instance exited with code {code}" if code is not None else "load failed"
        views.append({"id": str(entry["id"]), "status": value, "detail": detail})
    return views


def argv_slots(entry: Mapping[str, Any]) -> int | None:
    """A model's slots as its instance's argv (`status.args`) says: `--parallel N` or `-np N`; None when it does
    not say (the router was configured through LLAMA_ARG_N_PARALLEL, which its instances inherit, or not at all)."""
    status = entry.get("status")
    args = status.get("args") if isinstance(status, dict) else None
    if isinstance(args, list):
        for index, arg in enumerate(args):
            value: object = None
            if arg in ("--parallel", "-np") and index + 1 < len(args):
                value = args[index + 1]
            elif isinstance(arg, str) and arg.startswith("--parallel="):
                value = arg.partition("=")[2]
            if isinstance(value, str) and value.lstrip("-").isdigit() and int(value) > 0:
                return int(value)
    return None


# (router base URL, model id) -> (the instance's argv, the slots its /slots listed): asked once per loaded
# instance, since asking keeps a model from sleeping (and wakes a sleeping one).
_measured_slots: dict[tuple[str, str], tuple[str, int]] = {}


async def model_slots(
    session: aiohttp.ClientSession, base_url: str, headers: Mapping[str, str], listed: Iterable[Mapping[str, Any]]
) -> dict[str, int]:
    """Each model's slots: from its argv, else what a loaded instance's /slots listed (asked once), else the
    slots of another model of the router that is known (they share the router's settings), else
    llama-server's automatic choice."""
    found: dict[str, int | None] = {}
    for entry in listed:
        model = str(entry["id"])
        status = entry.get("status")
        instance = str(status.get("args")) if isinstance(status, dict) else ""  # its port differs per load
        measured = _measured_slots.get((base_url, model))
        slots = argv_slots(entry) or (measured[1] if measured else None)
        loaded = isinstance(status, dict) and status.get("value") == "loaded"
        if not argv_slots(entry) and loaded and (measured is None or measured[0] != instance):
            with contextlib.suppress(*TRANSPORT_ERRORS, ValueError):  # unknown for now: asked at the next probe
                slots = await _listed_slots(session, base_url, headers, model)
                _measured_slots[(base_url, model)] = (instance, slots)
        found[model] = slots
    known = [slots for slots in found.values() if slots]
    fallback = max(known) if known else AUTO_PARALLEL_SLOTS
    return {model: slots or fallback for model, slots in found.items()}


async def _listed_slots(session: aiohttp.ClientSession, base_url: str, headers: Mapping[str, str], model: str) -> int:
    async with session.get(
        base_url + "/slots",
        params={"model": model, "autoload": "false"},  # never load a model to count its slots
        headers=dict(headers),
        timeout=aiohttp.ClientTimeout(total=5.0),
    ) as response:
        body = await response.read()
    listing = orjson.loads(body) if response.status == 200 else None
    if not isinstance(listing, list) or not listing:
        raise ValueError(f"/slots?model={model} answered HTTP {response.status}")
    return len(listing)


def router_capacity(slots_per_model: Mapping[str, int], max_instances: object) -> int:
    """What the router can run at once: the slots of as many models as `--models-max` lets it load (0: all),
    the largest first. Not the loaded models' slots alone: a router with nothing loaded still takes requests
    (it loads on use), and a capacity that moved with each swap would unsettle the balancer and the queue."""
    slots = sorted(slots_per_model.values(), reverse=True)
    if not slots:
        return 1
    limit = max_instances if isinstance(max_instances, int) and max_instances > 0 else len(slots)
    return max(1, sum(slots[:limit]))


def summary_detail(views: list[RouterModelView], capacity: int) -> str:
    loaded = sum(1 for view in views if view["status"] in SERVING)
    return f"router: {loaded} of {len(views)} models loaded, {capacity} slots"
