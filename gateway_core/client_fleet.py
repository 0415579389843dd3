"""The fleet half of CorralClient: deployments, logs, compose files, systemd units and the GGUF catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

# A deployment waits for llama-server to load its model; give the HTTP call that long and a margin.
DEPLOY_MARGIN_S = 60.0


class FleetCalls:
    """Mixed into CorralClient, which provides `_call`, `_call_text` and `_stream`."""

    async def _call(
        self, method: str, path: str, json: Any = None, read_timeout_s: float | None = None, **options: Any
    ) -> Any:
        raise NotImplementedError

    async def _call_text(self, method: str, path: str, read_timeout_s: float | None = None, **options: Any) -> str:
        raise NotImplementedError

    def _stream(self, method: str, path: str, **options: Any) -> Any:
        raise NotImplementedError

    async def fleet(self) -> dict[str, Any]:
        """The engine's state and every llama-server container on it, Corral's own and others."""
        return await self._call("GET", "/fleet")

    async def plan_deployment(self, **fields: Any) -> dict[str, Any]:
        """The filled-in spec, VRAM estimate, placement and warnings, without deploying."""
        return await self._call("POST", "/fleet/plan", fields)

    async def deploy(self, health_timeout_s: float = 300.0, **fields: Any) -> dict[str, Any]:
        return await self._call(
            "POST",
            "/fleet/deployments",
            {**fields, "health_timeout_s": health_timeout_s},
            read_timeout_s=health_timeout_s + DEPLOY_MARGIN_S,
        )

    async def control_deployment(self, name: str, action: str) -> dict[str, Any]:
        return await self._call("POST", f"/fleet/deployments/{name}/{action}", read_timeout_s=120.0)

    async def remove_deployment(self, name: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/fleet/deployments/{name}", read_timeout_s=120.0)

    async def deployment_logs(self, name: str, tail: int = 200) -> str:
        return await self._call_text("GET", f"/fleet/deployments/{name}/logs", params={"tail": tail})

    async def follow_logs(self, name: str) -> AsyncIterator[str]:
        # No read timeout: a quiet server may log nothing for hours, and that is not an error.
        following = httpx.Timeout(30.0, read=None)
        async with self._stream("GET", f"/fleet/deployments/{name}/logs?follow=1", timeout=following) as response:
            async for line in response.aiter_lines():
                yield line

    async def export_compose(self) -> str:
        return await self._call_text("GET", "/fleet/compose")

    async def import_compose(self, text: str, health_timeout_s: float = 300.0) -> dict[str, Any]:
        return await self._call(
            "POST",
            "/fleet/compose",
            content=text.encode(),
            params={"health_timeout_s": health_timeout_s},
            read_timeout_s=health_timeout_s * 4 + DEPLOY_MARGIN_S,
        )

    async def systemd_unit(self, **fields: Any) -> str:
        return await self._call_text("POST", "/fleet/systemd/unit", json=fields)

    async def systemd_action(self, name: str, action: str, user: bool = False) -> dict[str, Any]:
        return await self._call("POST", f"/fleet/systemd/{name}/{action}", params={"user": str(user).lower()})

    async def catalog(self, directories: list[str] | None = None) -> dict[str, Any]:
        return await self._call("GET", "/catalog", params=[("dir", d) for d in directories or []])
