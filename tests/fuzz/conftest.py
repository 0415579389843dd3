"""One in-process gateway per fuzz module, in front of local upstreams, shared by every generated example.

Sharing is deliberate: the properties include "the gateway still answers a valid request after all of them",
and a fresh gateway per example would cost more than the examples. The gateway runs on an event loop of its own
(`FuzzTarget.run`), so each hypothesis example, a plain function, drives it without pytest-asyncio's per-test loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest

from tests.fakes.anthropic_server import AnthropicFakeServer
from tests.fakes.fault_server import FaultServer
from tests.fuzz.checks import Answer
from tests.fuzz.strategies import FuzzRequest
from tests.testbed.in_process import NO_DOCKER_HOST, InProcessGateway

T = TypeVar("T")
ANTHROPIC_MODEL = "claude"  # the public name of the Anthropic provider's model
UPSTREAM_TIMEOUT_S = 10.0


@dataclass
class FuzzTarget:
    runner: asyncio.Runner
    gateway: InProcessGateway
    upstream: FaultServer  # an OpenAI-compatible provider serving "tiny"
    anthropic: AnthropicFakeServer  # an Anthropic provider serving ANTHROPIC_MODEL
    key: str

    def run(self, awaitable: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await awaitable

        return self.runner.run(wrapped())

    def send_public(self, request: FuzzRequest) -> Answer:
        return self.run(_send(self.gateway.public, request.with_key(self.key)))

    def send_admin(self, request: FuzzRequest) -> Answer:
        return self.run(_send(self.gateway.admin, request.with_key(self.key)))

    def upstream_mark(self) -> tuple[int, int]:
        """How many requests each upstream has received so far, for `upstream_failed_since`."""
        return len(self.upstream.requests), len(self.anthropic.requests)

    def upstream_failed_since(self, mark: tuple[int, int]) -> bool:
        """Whether an upstream answered 5xx to a request it received since `mark`: each is sent to it again,
        directly (both answer the same request the same way)."""
        openai_seen, anthropic_seen = mark
        with httpx.Client(timeout=UPSTREAM_TIMEOUT_S) as client:
            statuses = [
                client.post(self.upstream.base_url + recorded.path, json=recorded.json).status_code
                for recorded in self.upstream.requests[openai_seen:]
                if recorded.method == "POST"  # not its health probes
            ]
            resent = zip(
                self.anthropic.requests[anthropic_seen:], self.anthropic.request_headers[anthropic_seen:], strict=True
            )
            statuses += [
                client.post(
                    self.anthropic.base_url + "/v1/messages", json=body, headers=_anthropic_headers(sent)
                ).status_code
                for body, sent in resent
            ]
        failed = any(status >= 500 for status in statuses)
        if failed:
            self.close_circuits()
        return failed

    def leftovers(self) -> list[str]:
        """What a finished request left held: live entries, provider slots in flight. Empty once all ended."""
        held = [f"live request {view['id']}" for view in self.gateway.state.live.views()]
        held += [
            f"{provider.name}: {provider.in_flight} in flight"
            for provider in self.gateway.state.registry.providers.values()
            if provider.in_flight
        ]
        return held

    def close_circuits(self) -> None:
        """An upstream's 5xx counts against its circuit; close it again so the next example meets the same
        gateway. Opening the circuit is tested elsewhere (tests/gateway/test_faults.py)."""
        for provider in self.gateway.state.registry.providers.values():
            provider.breaker.record_success()


def _anthropic_headers(sent: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in sent.items() if name in ("x-api-key", "anthropic-version")}


async def _send(client: httpx.AsyncClient, request: FuzzRequest) -> Answer:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in request.headers]
    response = await client.request(request.method, request.path, headers=headers, content=request.body)
    return Answer(
        response.status_code,
        tuple((name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in response.headers.raw),
        response.content,
    )


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    with (
        pytest.MonkeyPatch.context() as environment,
        FaultServer(model="tiny") as upstream,
        AnthropicFakeServer() as anthropic,
        asyncio.Runner() as runner,
    ):
        environment.setenv("DOCKER_HOST", NO_DOCKER_HOST)  # as the `gateway` fixture does: no Docker engine
        running = InProcessGateway.running(tmp_path_factory.mktemp("fuzz") / "corral")
        gateway = runner.run(running.__aenter__())
        try:
            runner.run(gateway.add_provider("fault", upstream.base_url))
            runner.run(
                gateway.add_provider(
                    "claude",
                    anthropic.base_url,
                    "anthropic",
                    api_key=anthropic.api_key,
                    models={ANTHROPIC_MODEL: anthropic.models[0]},
                )
            )
            key = runner.run(gateway.create_key("fuzz"))
            yield FuzzTarget(runner, gateway, upstream, anthropic, key)
        finally:
            runner.run(running.__aexit__(None, None, None))
