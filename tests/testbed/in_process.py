"""corral-core's objects in the test's own process and event loop, for tests that need no process of their own.

`GatewayState` over a temporary data dir, with the admin and public apps reached through
`StreamingASGITransport` (no socket, no port, no start-up), and a `FakeClock` that key expiry and rate
limits read. Start-up, signals, the admin socket and the listener stay with `CorralDaemon`, the real process.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai

from gateway_core.api.admin import build_admin_app
from gateway_core.api.public import build_public_app
from gateway_core.state import GatewayState
from tests.fakes.clock import FakeClock

from .asgi_stream import StreamingASGITransport

ADMIN_URL = "http://corral"  # the admin API's base URL over the socket, as the client names it
PUBLIC_URL = "http://gateway.test"
# What DOCKER_HOST is set to for an in-process gateway: a socket that cannot exist, so no test reaches
# (or is slowed by) the host's Docker engine through it. Fleet tests use the real daemon.
NO_DOCKER_HOST = "unix:///nonexistent/corral-in-process/docker.sock"
TIMEOUT_S = 30.0


class InProcessGateway:
    """One gateway: its state, an admin client, a public client and the clock. Use `InProcessGateway.running`."""

    def __init__(self, data_dir: Path, clock: FakeClock, **state_options: Any) -> None:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # as `serve` does
        self.data_dir = data_dir
        self.clock = clock
        self.state = GatewayState(data_dir, clock=clock, **state_options)
        self.admin_app = build_admin_app(self.state)
        self.public_app = build_public_app(self.state)
        self.admin = self.admin_client()
        self.public = self.public_client()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, data_dir: Path, clock: FakeClock | None = None, **state_options: Any
    ) -> AsyncIterator[InProcessGateway]:
        """Started as the daemon starts its state, and closed as it closes it, whatever the test did."""
        gateway = cls(data_dir, clock or FakeClock(), **state_options)
        async with contextlib.AsyncExitStack() as closing:  # each closes even if one before it raises
            closing.push_async_callback(gateway.state.close)
            closing.push_async_callback(gateway.public.aclose)
            closing.push_async_callback(gateway.admin.aclose)
            await gateway.state.start()
            yield gateway

    def admin_client(self) -> httpx.AsyncClient:
        """Another admin client, for a test that holds one stream open while it calls the API."""
        return httpx.AsyncClient(
            transport=StreamingASGITransport(self.admin_app), base_url=ADMIN_URL, timeout=TIMEOUT_S
        )

    def public_client(self, timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=StreamingASGITransport(self.public_app), base_url=PUBLIC_URL, timeout=timeout_s
        )

    def openai(self, key: str) -> openai.AsyncOpenAI:
        """The official SDK on the public API; close it (`async with`)."""
        return openai.AsyncOpenAI(
            base_url=PUBLIC_URL + "/v1", api_key=key, max_retries=0, http_client=self.public_client()
        )

    # -- conveniences, as CorralDaemon has them ------------------------------------------------------

    async def add_provider(
        self, name: str, base_url: str, type_: str = "llama-server", **fields: Any
    ) -> dict[str, Any]:
        response = await self.admin.post(
            "/providers", json={"name": name, "type": type_, "base_url": base_url, **fields}
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def create_key(self, name: str, **fields: Any) -> str:
        response = await self.admin.post("/keys", json={"name": name, **fields})
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    async def chat(self, key: str | None, **body: Any) -> httpx.Response:
        """POST /v1/chat/completions with `body` (model "tiny" and one user message unless given)."""
        headers = {"authorization": f"Bearer {key}"} if key else {}
        payload = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **body}
        return await self.public.post("/v1/chat/completions", json=payload, headers=headers)
