"""The fleet half of CorralClient: deployments, logs, compose files, systemd units and the GGUF catalog."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Literal, overload
from urllib.parse import urlencode

import httpx

from gateway_core.client_transport import AdminTransport
from gateway_core.contracts.detail_views import DeploymentDetailView
from gateway_core.contracts.fleet_views import (
    CatalogAnswer,
    ComposeImportAnswer,
    ContainerView,
    DeployAnswer,
    FleetView,
    OnDemandView,
    PlanAnswer,
    SystemdActionAnswer,
    UnitStatusView,
)
from gateway_core.contracts.views import ProviderView, Removed

# A deployment waits for llama-server to load its model; give the HTTP call that long and a margin.
DEPLOY_MARGIN_S = 60.0
# A load waits for the deployment's load_timeout (at most an hour); an unload for its requests in flight (30 s).
LOAD_WAIT_S = 3600.0
UNLOAD_WAIT_S = 90.0


class FleetCalls:
    """The fleet's admin routes, on the transport CorralClient hands it (CorralClient is a FleetCalls)."""

    def __init__(self, transport: AdminTransport) -> None:
        self._transport = transport

    async def fleet(self) -> FleetView:
        """The engine's state and every llama-server container on it, Corral's own and others."""
        return await self._transport.call(FleetView, "GET", "/fleet")

    async def plan_deployment(self, **fields: Any) -> PlanAnswer:
        """The filled-in spec, VRAM estimate, placement and warnings, without deploying."""
        return await self._transport.call(PlanAnswer, "POST", "/fleet/plan", fields)

    async def deploy(self, health_timeout_s: float = 300.0, **fields: Any) -> DeployAnswer:
        return await self._transport.call(
            DeployAnswer,
            "POST",
            "/fleet/deployments",
            {**fields, "health_timeout_s": health_timeout_s},
            read_timeout_s=health_timeout_s + DEPLOY_MARGIN_S,
        )

    async def control_deployment(self, name: str, action: str) -> ContainerView:
        return await self._transport.call(
            ContainerView, "POST", f"/fleet/deployments/{name}/{action}", read_timeout_s=120.0
        )

    async def drain_deployment(self, name: str) -> ProviderView:
        """Drain the deployment's provider: no new requests or jobs; what it holds runs to its end."""
        return await self._transport.call(ProviderView, "POST", f"/fleet/deployments/{name}/drain")

    async def undrain_deployment(self, name: str) -> ProviderView:
        return await self._transport.call(ProviderView, "POST", f"/fleet/deployments/{name}/undrain")

    async def remove_deployment(self, name: str) -> Removed:
        return await self._transport.call(Removed, "DELETE", f"/fleet/deployments/{name}", read_timeout_s=120.0)

    async def deployment_detail(self, name: str) -> DeploymentDetailView:
        """Everything corral-core knows of one deployment (its command, environment, health checks), secrets
        masked."""
        return await self._transport.call(DeploymentDetailView, "GET", f"/fleet/deployments/{name}/detail")

    async def deployment_logs(self, name: str, tail: int = 200) -> str:
        return await self._transport.call_text("GET", f"/fleet/deployments/{name}/logs", params={"tail": tail})

    async def follow_logs(
        self,
        name: str,
        *,
        tail: int | Literal["all"] | None = None,
        since: str | None = None,
        timestamps: bool = False,
    ) -> AsyncGenerator[str, None]:
        """Its last `tail` lines ("all"; None: the daemon's 200, or all of those since `since`: 15m, 1h, ISO, Unix
        seconds), then new lines as they come; with `timestamps`, each starts with its RFC 3339 time and a space."""
        # No read timeout: a quiet server may log nothing for hours, and that is not an error.
        following = httpx.Timeout(30.0, read=None)
        params: dict[str, str | int] = {"follow": 1}
        if since is not None:
            params["since"] = since
            params["tail"] = "all" if tail is None else tail
        elif tail is not None:
            params["tail"] = tail
        if timestamps:
            params["timestamps"] = 1
        async with self._transport.stream(
            "GET", f"/fleet/deployments/{name}/logs?{urlencode(params)}", timeout=following
        ) as response:
            async for line in response.aiter_lines():
                yield line

    async def export_compose(self) -> str:
        return await self._transport.call_text("GET", "/fleet/compose")

    async def import_compose(self, text: str, health_timeout_s: float = 300.0) -> ComposeImportAnswer:
        return await self._transport.call(
            ComposeImportAnswer,
            "POST",
            "/fleet/compose",
            content=text.encode(),
            params={"health_timeout_s": health_timeout_s},
            read_timeout_s=health_timeout_s * 4 + DEPLOY_MARGIN_S,
        )

    async def systemd_unit(self, **fields: Any) -> str:
        return await self._transport.call_text("POST", "/fleet/systemd/unit", json=fields)

    @overload
    async def systemd_action(self, name: str, action: Literal["status"], user: bool = False) -> UnitStatusView: ...
    @overload
    async def systemd_action(
        self, name: str, action: str, user: bool = False
    ) -> SystemdActionAnswer | UnitStatusView: ...
    async def systemd_action(self, name: str, action: str, user: bool = False) -> SystemdActionAnswer | UnitStatusView:
        """`status` answers the unit's state; start, stop and restart answer what was done."""
        path = f"/fleet/systemd/{name}/{action}"
        params = {"user": str(user).lower()}
        if action == "status":
            return await self._transport.call(UnitStatusView, "POST", path, params=params)
        return await self._transport.call(SystemdActionAnswer, "POST", path, params=params)

    async def on_demand(self) -> list[OnDemandView]:
        """Every managed deployment's load state and policy (an `always` one is warm or failed)."""
        return await self._transport.call(list[OnDemandView], "GET", "/fleet/on-demand")

    async def on_demand_one(self, name: str) -> OnDemandView:
        return await self._transport.call(OnDemandView, "GET", f"/fleet/on-demand/{name}")

    async def load_deployment(self, name: str, timeout_s: float = LOAD_WAIT_S) -> OnDemandView:
        """Start the deployment if it is cold (making room on its GPUs) and answer once it is warm."""
        return await self._transport.call(
            OnDemandView, "POST", f"/fleet/deployments/{name}/load", read_timeout_s=timeout_s + DEPLOY_MARGIN_S
        )

    async def unload_deployment(self, name: str) -> OnDemandView:
        """Stop the deployment once its requests in flight end (the daemon waits for them up to 30 s)."""
        return await self._transport.call(
            OnDemandView, "POST", f"/fleet/deployments/{name}/unload", read_timeout_s=UNLOAD_WAIT_S
        )

    async def set_load_policy(self, name: str, **changes: Any) -> OnDemandView:
        """Change the policy: any of mode, idle_ttl_s, pin, priority, load_timeout_s (durations as seconds or
        text such as "10m"). It is kept by the daemon and wins over the policy the deployment was made with."""
        return await self._transport.call(OnDemandView, "PATCH", f"/fleet/deployments/{name}/policy", changes)

    async def catalog(self, directories: list[str] | None = None) -> CatalogAnswer:
        return await self._transport.call(
            CatalogAnswer, "GET", "/catalog", params=httpx.QueryParams([("dir", d) for d in directories or []])
        )
