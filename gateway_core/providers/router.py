"""llama-server's router mode (`--models-dir`): one provider, many models, each loaded and unloaded on its own.

The router holds a request for a loading model until the load ends, and loads an unloaded one itself, but a
load that fails answers the request with a 500, and an explicit unload cuts the requests on that model. So
before a request goes to a model that is not known to be loaded, `ensure_model_ready` loads it (one load
however many requests wait) and waits, bounded, so that loading is never an attempt that fails and never
counts against the provider; a model that failed to load is a 503 with llama-server's reason. When every
loaded model is busy, llama-server refuses an explicit load but queues a request, so the request is sent.
When the router already runs --models-max models and loads for requests itself, a request is sent at once,
too: llama-server's explicit load then waits for the model it evicts to be unloaded, and never returns if a
queued request loads that model again first (seen on this build: the load blocked until the next swap).
Operators load and unload through `load_model` and `unload_model`; an unload waits until nothing runs on the
model. What the router lists (statuses, slots, capacity) is read in router_listing.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import aiohttp
import orjson

from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.views import RouterModelStatus, RouterModelView

from .endpoints import auth_headers
from .router_listing import SERVING, model_views
from .runtime import ProviderRuntime
from .upstream import TRANSPORT_ERRORS, describe

ROUTER_LOAD_TIMEOUT_S = 120.0  # a request's or an operator's wait for a model to load (the on-demand default)
UNLOAD_IDLE_WAIT_S = 30.0  # how long an unload waits for the model's requests to end before refusing
FAILED_RETRY_S = 10.0  # a request for a model that failed to load tries it again at most this often
# POST /models/load's answer (HTTP 500) when --models-max models are loaded and none is idle.
LIMIT_REACHED = "model limit reached"
# llama-server's 400 for a request that reached a model not running: unloaded since Corral last saw it loaded
# (autoload off: "model is not loaded"), or swapped out between the router's own load and its proxying, which
# another model's request can do at --models-max ("model name=M is not running").
NOT_RUNNING_MARKERS = (b"is not running", b"is not loaded")
REQUEST_LOAD_CALL_S = 5.0  # a request's POST /models/load that takes longer is left to the router's own queue
RUNNING: frozenset[str] = frozenset({"loaded", "sleeping", "loading"})  # what counts towards --models-max
_POLL_FIRST_S = 0.01  # a load of a small model takes milliseconds: poll fast first, then back off
_POLL_MAX_S = 0.25


# -- what the pipeline asks -------------------------------------------------------------------------------


@dataclass
class _RouterState:
    """Per router provider: the load in flight per model (one however many wait), unloads under way, and when
    a load Corral asked for last failed."""

    loads: dict[tuple[str, bool], asyncio.Task[_Loaded]] = field(default_factory=dict)  # by (model, for a request)
    unloading: set[str] = field(default_factory=set)
    failed_at: dict[str, float] = field(default_factory=dict)
    props: _RouterProps | None = None  # asked when first needed


@dataclass(frozen=True)
class _RouterProps:
    """What the router's /props says of its model management."""

    autoload: bool  # models_autoload: it loads a model for a request itself (on by default)
    models_max: int  # max_instances (--models-max); 0: no limit


class _HandedToRouter:
    """A load's outcome: the model is not loaded, and the router loads it for the request that is sent to it."""


HANDED_TO_ROUTER = _HandedToRouter()
_Loaded: TypeAlias = GatewayError | _HandedToRouter | None


# Keyed by the runtime, so a provider replaced or removed takes its state with it.
_states: weakref.WeakKeyDictionary[ProviderRuntime, _RouterState] = weakref.WeakKeyDictionary()


def _state(provider: ProviderRuntime) -> _RouterState:
    state = _states.get(provider)
    if state is None:
        state = _states[provider] = _RouterState()
    return state


def _find(provider: ProviderRuntime, model: str) -> RouterModelView | None:
    for view in provider.router_models or ():
        if view["id"] == model:
            return view
    return None


def router_model_status(provider: ProviderRuntime, upstream_model: str) -> RouterModelStatus | None:
    """The model's last known status on this router; "unloaded" while Corral unloads it (so a request waits
    for the unload and loads it again instead of being cut); None when the provider is not a router or does
    not list the model."""
    if provider.router_models is None:
        return None
    state = _states.get(provider)
    if state is not None and upstream_model in state.unloading:
        return "unloaded"
    view = _find(provider, upstream_model)
    return view["status"] if view is not None else None


async def ensure_model_ready(provider: ProviderRuntime, upstream_model: str, timeout_s: float) -> GatewayError | None:
    """Make the model loaded before a request is sent to it: None to send it, or the error to answer.

    A loading model is waited for; an unloaded one is loaded (one POST /models/load however many requests
    wait); a sleeping one is sent at once (it wakes on the request). A model that failed to load is tried again
    at most every FAILED_RETRY_S and is otherwise a 503 with llama-server's reason. A router that cannot be
    reached is left to the request's attempt, whose failure is the provider's."""
    status = router_model_status(provider, upstream_model)
    if status is None or status in SERVING:
        return None
    state = _state(provider)
    if status == "failed" and (upstream_model, True) not in state.loads:
        failed_at = state.failed_at.get(upstream_model)
        if failed_at is not None and time.monotonic() - failed_at < FAILED_RETRY_S:
            view = _find(provider, upstream_model)
            return _load_failed(provider, upstream_model, view["detail"] if view else "")
    outcome = await _join_load(provider, upstream_model, timeout_s, for_request=True)
    return None if isinstance(outcome, _HandedToRouter) else outcome


def not_running(status: int, body: bytes) -> bool:
    """Whether the router refused a request because its model is not running (resend it once loaded)."""
    return status == 400 and any(marker in body for marker in NOT_RUNNING_MARKERS)


def note_not_running(provider: ProviderRuntime, upstream_model: str) -> None:
    """The router said the model is not running where Corral saw it loaded: see it unloaded until the router's
    next listing, so the next request loads it first."""
    views = provider.router_models
    if views is None:
        return
    marked: list[RouterModelView] = []
    for view in views:
        if view["id"] == upstream_model and view["status"] in SERVING:
            view = RouterModelView(id=view["id"], status="unloaded", detail=view["detail"])  # the listing is replaced
        marked.append(view)
    provider.set_router_models(marked)


# -- what operators ask -----------------------------------------------------------------------------------


def require_router(provider: ProviderRuntime) -> None:
    if provider.router_models is None:
        raise GatewayError(
            400,
            f"provider '{provider.name}' is not a llama-server in router mode (no --models-dir), so it has no "
            f"models to load or unload; `corral providers list` shows what it serves",
            param="name",
            code="not_a_router",
        )


async def require_model(provider: ProviderRuntime, model: str) -> None:
    """404 unless the router lists the model, asked again now (a GGUF may have been added since the probe)."""
    require_router(provider)
    if _find(provider, model) is None:
        with contextlib.suppress(*TRANSPORT_ERRORS, ValueError, KeyError, TypeError):
            await refresh(provider)
    if _find(provider, model) is None:
        listed = ", ".join(view["id"] for view in provider.router_models or ()) or "none"
        raise GatewayError(
            404,
            f"router '{provider.name}' has no model '{model}' (it lists: {listed}); "
            f"`corral providers models {provider.name}` shows them",
            param="model",
            code="model_not_found",
        )


async def load_model(provider: ProviderRuntime, model: str, timeout_s: float = ROUTER_LOAD_TIMEOUT_S) -> None:
    """The operator's load: returns once the model is loaded; raises the GatewayError that says why not."""
    await require_model(provider, model)
    _state(provider).failed_at.pop(model, None)  # an operator's load is tried whenever it fails
    if router_model_status(provider, model) in SERVING:
        return
    outcome = await _join_load(provider, model, timeout_s, for_request=False)
    if isinstance(outcome, _HandedToRouter):
        raise GatewayError(
            409,
            f"router '{provider.name}' runs as many models as its --models-max and none is idle, so it refused to "
            f"load '{model}'; retry once a model is idle, or unload one (`corral providers unload-model`)",
            code="model_busy",
        )
    if outcome is not None:
        raise outcome


async def unload_model(provider: ProviderRuntime, model: str, timeout_s: float = ROUTER_LOAD_TIMEOUT_S) -> None:
    """The operator's unload: waits (up to UNLOAD_IDLE_WAIT_S) until nothing runs on the model, since
    llama-server's unload cuts what runs, then unloads it and returns once it is unloaded."""
    await require_model(provider, model)
    state = _state(provider)
    if model in state.unloading:
        raise GatewayError(
            409, f"model '{model}' on '{provider.name}' is being unloaded already; wait for it", code="model_busy"
        )
    state.unloading.add(model)
    try:
        await refresh(provider)
        if router_model_status_raw(provider, model) in ("unloaded", "failed"):
            return
        await _wait_idle(provider, model)
        await _post(provider, "/models/unload", model, timeout_s)
        deadline = time.monotonic() + timeout_s
        delay = _POLL_FIRST_S
        while router_model_status_raw(provider, model) not in ("unloaded", "failed", None):
            if time.monotonic() >= deadline:
                raise GatewayError(
                    503, f"router '{provider.name}' did not unload '{model}' within {timeout_s:.0f}s", code="timeout"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
            await refresh(provider)
    except (*TRANSPORT_ERRORS, ValueError) as error:
        raise _unreachable(provider, error) from error
    finally:
        state.unloading.discard(model)


def router_model_status_raw(provider: ProviderRuntime, model: str) -> RouterModelStatus | None:
    view = _find(provider, model)
    return view["status"] if view is not None else None


# -- talking to the router --------------------------------------------------------------------------------


async def refresh(provider: ProviderRuntime) -> list[RouterModelView]:
    """Ask the router for its models now and keep what it says on the provider (a change is published)."""
    async with provider.session.get(
        provider.config.base_url + "/models",
        headers=auth_headers(provider.config),
        timeout=aiohttp.ClientTimeout(total=5.0),
    ) as response:
        body = await response.read()
        if response.status != 200:
            raise ValueError(f"GET /models answered HTTP {response.status}")
    listed = orjson.loads(body).get("data", [])
    views = model_views(listed)
    provider.set_router_models(views)
    return views


async def _post(provider: ProviderRuntime, path: str, model: str, timeout_s: float) -> tuple[int, str]:
    """POST /models/load or /models/unload; the status and llama-server's message. A load can block while the
    router waits for another model's requests to end (models-max reached), so it is bounded by the caller."""
    async with provider.session.post(
        provider.config.base_url + path,
        json={"model": model},
        headers=auth_headers(provider.config),
        timeout=aiohttp.ClientTimeout(total=max(timeout_s, 0.1)),
    ) as response:
        body = await response.read()
    message = ""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        error = orjson.loads(body).get("error")
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
    return response.status, message


async def _join_load(provider: ProviderRuntime, model: str, timeout_s: float, *, for_request: bool) -> _Loaded:
    """Wait, at most timeout_s, on the model's one load for requests, or for operators (started here when
    none runs): only a request's may be handed to the router's own loading."""
    state = _state(provider)
    key = (model, for_request)
    task = state.loads.get(key)
    if task is None:
        bound = max(timeout_s, ROUTER_LOAD_TIMEOUT_S)
        task = asyncio.create_task(_load(provider, model, bound, for_request), name=f"router-load:{model}")
        state.loads[key] = task
        task.add_done_callback(lambda done: state.loads.pop(key, None) if state.loads.get(key) is done else None)
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout_s)
    except TimeoutError:
        return _still_loading(provider, model, timeout_s)


def _still_loading(provider: ProviderRuntime, model: str, waited_s: float) -> GatewayError:
    return GatewayError(
        503,
        f"model '{model}' on router '{provider.name}' is still loading after {waited_s:.0f}s; retry shortly",
        code="model_loading",
        headers={"retry-after": "5"},
    )


async def _load(provider: ProviderRuntime, model: str, timeout_s: float, for_request: bool) -> _Loaded:
    deadline = time.monotonic() + timeout_s
    state = _state(provider)
    while model in state.unloading:  # an operator's unload runs: load after it, not under it
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(_POLL_MAX_S)
    asked = False
    delay = _POLL_FIRST_S
    try:
        while True:
            await refresh(provider)
            view = _find(provider, model)
            if view is None:
                return None  # no longer listed: the request's attempt gets llama-server's own answer
            status = view["status"]
            if status in SERVING:
                state.failed_at.pop(model, None)
                return None
            if status == "failed" and asked:
                state.failed_at[model] = time.monotonic()
                return _load_failed(provider, model, view["detail"])
            if time.monotonic() >= deadline:
                return _still_loading(provider, model, timeout_s)  # the router goes on loading
            if status in ("unloaded", "failed"):
                props = await _props(provider, state)
                if for_request and props.autoload and _full(provider, props):
                    return HANDED_TO_ROUTER
                # Asked again if the router swapped it out before it served (models-max): bounded by the deadline.
                bound = deadline - time.monotonic()
                try:
                    code, message = await _post(
                        provider, "/models/load", model, min(bound, REQUEST_LOAD_CALL_S) if for_request else bound
                    )
                except TimeoutError:
                    if for_request and props.autoload:  # it filled up meanwhile: its queue loads it for the request
                        return HANDED_TO_ROUTER
                    continue  # its listing says what happened; asked again while the deadline allows
                if code != 200 and LIMIT_REACHED in message:
                    # Every loaded model is busy. A request is queued by llama-server's autoload until one is idle
                    # and then swapped in, where an explicit load is refused: send it, unless the router has
                    # autoload off, in which case ask again once a model may have gone idle.
                    if props.autoload or time.monotonic() >= deadline:
                        return HANDED_TO_ROUTER
                    await asyncio.sleep(_POLL_MAX_S)
                    continue
                asked = True
                if code != 200 and "already" not in message:
                    state.failed_at[model] = time.monotonic()
                    return _load_failed(provider, model, message or f"POST /models/load answered HTTP {code}")
                delay = _POLL_FIRST_S
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX_S)
    except TRANSPORT_ERRORS:
        return None  # unreachable: the attempt finds out, and that failure is the provider's
    except (ValueError, KeyError, TypeError):
        return None


async def _props(provider: ProviderRuntime, state: _RouterState) -> _RouterProps:
    """The router's /props, asked once: they are its command line's."""
    if state.props is None:
        async with provider.session.get(
            provider.config.base_url + "/props",
            headers=auth_headers(provider.config),
            timeout=aiohttp.ClientTimeout(total=5.0),
        ) as response:
            body = await response.read()
        props = orjson.loads(body) if response.status == 200 else {}
        if not isinstance(props, dict):
            props = {}
        models_max = props.get("max_instances")
        state.props = _RouterProps(
            autoload=props.get("models_autoload") is not False,
            models_max=models_max if isinstance(models_max, int) and models_max > 0 else 0,
        )
    return state.props


def _full(provider: ProviderRuntime, props: _RouterProps) -> bool:
    """Whether the router runs as many models as --models-max lets it, by its last listing."""
    running = sum(1 for view in provider.router_models or () if view["status"] in RUNNING)
    return props.models_max > 0 and running >= props.models_max


async def _wait_idle(provider: ProviderRuntime, model: str) -> None:
    """Until none of the model's slots processes a request (its /slots, which answers only for a loaded model)."""
    deadline = time.monotonic() + UNLOAD_IDLE_WAIT_S
    while True:
        async with provider.session.get(
            provider.config.base_url + "/slots",
            params={"model": model, "autoload": "false"},
            headers=auth_headers(provider.config),
            timeout=aiohttp.ClientTimeout(total=5.0),
        ) as response:
            body = await response.read()
        if response.status != 200:
            return  # not loaded (400) or loading (503): nothing runs on it
        slots = orjson.loads(body)
        busy = sum(1 for slot in slots if isinstance(slot, dict) and slot.get("is_processing"))
        if not busy:
            return
        if time.monotonic() >= deadline:
            raise GatewayError(
                409,
                f"model '{model}' on router '{provider.name}' still has {busy} requests running after "
                f"{UNLOAD_IDLE_WAIT_S:.0f}s (llama-server's unload would cut them); retry when they end",
                code="model_busy",
            )
        await asyncio.sleep(_POLL_MAX_S)


def _load_failed(provider: ProviderRuntime, model: str, reason: str) -> GatewayError:
    return GatewayError(
        503,
        f"router '{provider.name}' could not load model '{model}': {reason or 'llama-server gave no reason'}; "
        f"check its GGUF and llama-server's log, then `corral providers load-model {provider.name} {model}`",
        code="model_load_failed",
        headers={"retry-after": str(int(FAILED_RETRY_S))},
    )


def _unreachable(provider: ProviderRuntime, error: BaseException) -> GatewayError:
    return GatewayError(
        503,
        f"cannot reach router '{provider.name}' at {provider.config.base_url}: {describe(error)}; "
        f"`corral providers test {provider.name}` probes it",
        code="provider_unreachable",
    )


def model_request(body: Mapping[str, Any]) -> tuple[str, float]:
    """The admin load and unload bodies: `{"model": ID}`, and optionally how long to wait (`timeout_s`)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, 'model: give the model\'s id, as {"model": ID}', param="model", code="invalid_field")
    timeout = body.get("timeout_s", ROUTER_LOAD_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise GatewayError(400, "timeout_s: a number of seconds, above 0, at most 3600", param="timeout_s")
    return model, float(timeout)
