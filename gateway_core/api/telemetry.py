"""The telemetry admin routes: an hour of GPU and provider history, downsampled to the window asked, and the
processes on the GPUs with the host line (the console's GPU history and processes screens, scripts)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway_core.api.queue import refuse_unknown
from gateway_core.api.responses import json_response
from gateway_core.clock import Clock
from gateway_core.contracts.errors import GatewayError
from gateway_core.fleet.gpu_history import MAX_POINTS, GpuHistory, ProviderRates
from gateway_core.fleet.processes import GpuProcesses

DEFAULT_POINTS = 120
MAX_MINUTES = 60  # what the rings keep


class TelemetryApi:
    def __init__(
        self, *, gpu_history: GpuHistory, provider_rates: ProviderRates, processes: GpuProcesses, clock: Clock
    ) -> None:
        self._gpu_history = gpu_history
        self._provider_rates = provider_rates
        self._processes = processes
        self._clock = clock

    def routes(self) -> list[BaseRoute]:
        """Listed before the admin routes: /providers/{name} would take /providers/history."""
        return [
            Route("/gpus/history", self.gpu_history, methods=["GET"]),
            Route("/gpus/processes", self.processes, methods=["GET"]),
            Route("/providers/history", self.provider_history, methods=["GET"]),
        ]

    async def gpu_history(self, request: Request) -> Response:
        minutes, points = history_window(request)
        return json_response(self._gpu_history.view(minutes, points, self._clock.time()))

    async def provider_history(self, request: Request) -> Response:
        minutes, points = history_window(request)
        return json_response(self._provider_rates.view(minutes, points, self._clock.time()))

    async def processes(self, request: Request) -> Response:
        refuse_unknown(request.query_params, ())
        return json_response(await self._processes.view())


def history_window(request: Request) -> tuple[int, int]:
    params = request.query_params
    refuse_unknown(params, ("minutes", "points"))
    return (
        _whole(params.get("minutes"), "minutes", 15, MAX_MINUTES),
        _whole(params.get("points"), "points", DEFAULT_POINTS, MAX_POINTS),
    )


def _whole(text: str | None, name: str, default: int, most: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise GatewayError(
            400, f"{name}: '{text}' must be a whole number from 1 to {most}", param=name, code="invalid_parameter"
        )
    return int(text)
