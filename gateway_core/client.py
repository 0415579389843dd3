"""An async client for corral-core's admin socket, for the console, the `corral` CLI and headless scripts.

async with CorralClient() as client:
    print(await client.status())

Every answer is typed by gateway_core/contracts: the views the daemon produces, and `events()` yields
(kind, payload) pairs that narrow on the kind.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from gateway_core.client_fleet import FleetCalls
from gateway_core.client_history import HistoryCalls
from gateway_core.client_jobs import JobCalls
from gateway_core.client_transport import (
    DEFAULT_TIMEOUT_S,
    AdminTransport,
    CorralError,
    DaemonNotRunning,
    decoded,
    decoded_event,
    sse_frames,
)
from gateway_core.contracts.chat import ChatCompletion, ChatCompletionChunk, CompletionUsage
from gateway_core.contracts.events import DaemonEvent
from gateway_core.contracts.fleet_views import GpuSnapshotView
from gateway_core.contracts.views import (
    Cancelled,
    CreatedKey,
    GpuHistoryView,
    HealthAnswer,
    KeyView,
    LiveRequestView,
    ProbeAnswer,
    ProcessesView,
    ProviderHistoryView,
    ProviderView,
    Removed,
    StatsView,
    StatusView,
)
from gateway_core.settings import default_data_dir, default_socket_path

__all__ = ["ChatStream", "CorralClient", "CorralError", "DaemonNotRunning"]

# The daemon sends a keep-alive comment every 15 s, so a silent minute means it is gone.
EVENTS_READ_TIMEOUT_S = 60.0
# A model may load or think for a long time before its first token.
CHAT_READ_TIMEOUT_S = 600.0
ROUTER_WAIT_S = 120.0  # a router model's load (the daemon's own bound, providers/router.py)
ROUTER_MARGIN_S = 10.0


def _quoted(segment: str) -> str:
    return quote(segment, safe="")


class ChatStream:
    """The chunks of one streamed chat completion, as parsed OpenAI chunk dicts.

    Iterate it with `async for`; after that, `provider` names who answered and `usage` holds the token
    counts when the daemon sent them (ask with `stream_options={"include_usage": True}`).
    Raises CorralError when the daemon refuses the request or the stream ends with an error frame.
    """

    def __init__(self, transport: AdminTransport, payload: dict[str, Any]) -> None:
        self.provider: str | None = None
        self.usage: CompletionUsage | None = None
        self.model: str | None = None
        self._chunks = self._run(transport, payload)

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()

    async def __aenter__(self) -> ChatStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(
        self, transport: AdminTransport, payload: dict[str, Any]
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=CHAT_READ_TIMEOUT_S)
        async with transport.stream("POST", "/v1/chat/completions", json=payload, timeout=timeout) as response:
            self.provider = response.headers.get("x-corral-provider")
            async for _, data in sse_frames(response):
                if data.strip() == "[DONE]":
                    return
                try:
                    parsed = json.loads(data)
                except ValueError as error:
                    raise CorralError(f"corral-core sent a stream frame that is not JSON: {data[:200]!r}") from error
                if not isinstance(parsed, dict):
                    raise CorralError(f"corral-core sent a stream frame that is not an object: {data[:200]!r}")
                if "error" in parsed:
                    raise CorralError.from_body(None, parsed, "the stream ended with an error")
                chunk = decoded(ChatCompletionChunk, parsed)
                if chunk.get("usage"):
                    self.usage = chunk["usage"]
                self.model = chunk.get("model", self.model)
                yield chunk
        raise CorralError("the stream ended before the answer was complete (no [DONE])")


class CorralClient(FleetCalls, HistoryCalls, JobCalls):
    """The admin API over the Unix socket. Every method raises CorralError (DaemonNotRunning when nobody answers)."""

    def __init__(self, socket_path: str | Path | None = None, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.socket_path = Path(socket_path) if socket_path else default_socket_path(default_data_dir())
        super().__init__(AdminTransport(self.socket_path, timeout=timeout))

    async def __aenter__(self) -> CorralClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    # -- daemon ---------------------------------------------------------------------------------------

    async def health(self) -> HealthAnswer:
        return await self._transport.call(HealthAnswer, "GET", "/health")

    async def status(self) -> StatusView:
        return await self._transport.call(StatusView, "GET", "/status")

    async def models(self) -> dict[str, list[str]]:
        """Public model name -> the names of the providers serving it."""
        return await self._transport.call(dict[str, list[str]], "GET", "/models")

    async def stats(self) -> StatsView:
        return await self._transport.call(StatsView, "GET", "/stats")

    async def gpus(self) -> GpuSnapshotView:
        """The latest GPU telemetry snapshot: state ("ok" or "unavailable"), reason, devices."""
        return await self._transport.call(GpuSnapshotView, "GET", "/gpus")

    async def gpu_history(self, minutes: int = 15, points: int = 120) -> GpuHistoryView:
        """Each GPU's readings over the last `minutes` (1 to 60), as `points` bucket means, oldest first."""
        return await self._transport.call(GpuHistoryView, "GET", f"/gpus/history?minutes={minutes}&points={points}")

    async def provider_history(self, minutes: int = 15, points: int = 120) -> ProviderHistoryView:
        """Each provider's requests and completion tokens per second over the last `minutes` (1 to 60)."""
        return await self._transport.call(
            ProviderHistoryView, "GET", f"/providers/history?minutes={minutes}&points={points}"
        )

    async def gpu_processes(self) -> ProcessesView:
        """The processes on the GPUs (user, memory, SM %, CPU %, RSS, command, container or unit) and the host."""
        return await self._transport.call(ProcessesView, "GET", "/gpus/processes")

    async def llama_server_images(self) -> list[str]:
        """The Docker engine's local images that look like llama.cpp's server (503 engine_unavailable without one)."""
        return await self._transport.call(list[str], "GET", "/fleet/images")

    # -- providers ------------------------------------------------------------------------------------

    async def providers(self) -> list[ProviderView]:
        return await self._transport.call(list[ProviderView], "GET", "/providers")

    async def provider(self, name: str) -> ProviderView:
        return await self._transport.call(ProviderView, "GET", f"/providers/{_quoted(name)}")

    async def add_provider(self, **fields: Any) -> ProviderView:
        """Fields: name, type, base_url, api_key_env, api_key, models {public: upstream}, priority, weight,
        max_concurrency, enabled. Returns the new provider's summary."""
        return await self._transport.call(ProviderView, "POST", "/providers", fields)

    async def update_provider(self, name: str, **changes: Any) -> ProviderView:
        return await self._transport.call(ProviderView, "PATCH", f"/providers/{_quoted(name)}", changes)

    async def remove_provider(self, name: str) -> Removed:
        return await self._transport.call(Removed, "DELETE", f"/providers/{_quoted(name)}")

    async def test_provider(self, name: str) -> ProbeAnswer:
        """Probe a saved provider now: {name, health, detail, models, capacity}."""
        return await self._transport.call(ProbeAnswer, "POST", f"/providers/{_quoted(name)}/test")

    async def drain_provider(self, name: str) -> ProviderView:
        """Send it no new requests or jobs; what it holds runs to its end ("draining", then "drained")."""
        return await self._transport.call(ProviderView, "POST", f"/providers/{_quoted(name)}/drain")

    async def undrain_provider(self, name: str) -> ProviderView:
        return await self._transport.call(ProviderView, "POST", f"/providers/{_quoted(name)}/undrain")

    async def load_provider_model(self, name: str, model: str, *, timeout_s: float = ROUTER_WAIT_S) -> ProviderView:
        """Load a model of a router-mode llama-server (its id, as `router_models` lists it); the provider once
        it is loaded. Waits up to timeout_s for the load."""
        return await self._transport.call(
            ProviderView,
            "POST",
            f"/providers/{_quoted(name)}/models/load",
            {"model": model, "timeout_s": timeout_s},
            read_timeout_s=timeout_s + ROUTER_MARGIN_S,
        )

    async def unload_provider_model(self, name: str, model: str, *, timeout_s: float = ROUTER_WAIT_S) -> ProviderView:
        """Unload a router's model once nothing runs on it (up to 30 s, else a 409); the provider after."""
        return await self._transport.call(
            ProviderView,
            "POST",
            f"/providers/{_quoted(name)}/models/unload",
            {"model": model, "timeout_s": timeout_s},
            read_timeout_s=timeout_s + ROUTER_MARGIN_S + 30.0,
        )

    async def test_provider_config(self, **fields: Any) -> ProbeAnswer:
        """Probe a provider configuration without saving it (same fields as add_provider)."""
        return await self._transport.call(ProbeAnswer, "POST", "/providers/test", fields)

    # -- keys -----------------------------------------------------------------------------------------

    async def keys(self) -> list[KeyView]:
        return await self._transport.call(list[KeyView], "GET", "/keys")

    async def create_key(self, name: str, **fields: Any) -> CreatedKey:
        """Fields: models (list or None for all), rpm, tpm, max_concurrency, expires_in_days.
        The answer's "key" is the full secret, shown this once."""
        return await self._transport.call(CreatedKey, "POST", "/keys", {"name": name, **fields})

    async def update_key(self, id_or_name: str, **changes: Any) -> KeyView:
        return await self._transport.call(KeyView, "PATCH", f"/keys/{_quoted(id_or_name)}", changes)

    async def revoke_key(self, id_or_name: str) -> KeyView:
        return await self._transport.call(KeyView, "POST", f"/keys/{_quoted(id_or_name)}/revoke")

    async def remove_key(self, id_or_name: str) -> Removed:
        return await self._transport.call(Removed, "DELETE", f"/keys/{_quoted(id_or_name)}")

    # -- requests -------------------------------------------------------------------------------------

    async def requests(self) -> list[LiveRequestView]:
        """The requests running now."""
        return await self._transport.call(list[LiveRequestView], "GET", "/requests")

    async def cancel_request(self, request_id: str) -> Cancelled:
        return await self._transport.call(Cancelled, "DELETE", f"/requests/{_quoted(request_id)}")

    async def events(self) -> AsyncGenerator[DaemonEvent, None]:
        """Yield (kind, payload): a "snapshot" first, then deltas ("provider", "key", "request.start", ...).

        Narrow on the kind (`if event[0] == "key": event[1]["name"]`, or `match`); contracts/events.py lists
        the kinds. A kind this client does not know (a newer daemon's) is skipped. Ends when the daemon ends
        the stream (a subscriber that falls behind is dropped); call again for a fresh snapshot. Close it
        (`contextlib.aclosing`) when stopping early.
        """
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=EVENTS_READ_TIMEOUT_S)
        async with self._transport.stream("GET", "/events", timeout=timeout) as response:
            async for kind, data in sse_frames(response):
                try:
                    parsed = json.loads(data)
                except ValueError as error:
                    raise CorralError(f"corral-core sent an event that is not JSON: {data[:200]!r}") from error
                event = decoded_event(kind, parsed)
                if event is not None:
                    yield event

    def chat_stream(self, model: str, messages: list[dict[str, Any]], **params: Any) -> ChatStream:
        """Stream a chat completion through the gateway as admin; iterate the result for OpenAI chunk dicts."""
        return ChatStream(self._transport, {**params, "model": model, "messages": messages, "stream": True})

    async def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> ChatCompletion:
        """A chat completion without streaming: the OpenAI response dict."""
        return await self._transport.call(
            ChatCompletion,
            "POST",
            "/v1/chat/completions",
            {**params, "model": model, "messages": messages, "stream": False},
            read_timeout_s=CHAT_READ_TIMEOUT_S,
        )
