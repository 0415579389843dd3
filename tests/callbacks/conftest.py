"""Callback tests: a CallbackService over a temporary callbacks.sqlite, on a compressed schedule, sending to a
real receiver on 127.0.0.1 (allowed by the allow-list, as an operator would for a receiver on the same box)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from gateway_core.callbacks.service import CallbackService
from gateway_core.callbacks.settings import CallbackSettings, networks
from gateway_core.contracts.jobs import DeliveryState, JobView
from gateway_core.events import EventBus
from gateway_core.gateway.keys import new_webhook_secret
from tests.callbacks.receiver import Receiver
from tests.testbed.waiting import wait_for_async

KEY_ID = "a1b2c3d4e5f6"
LOOPBACK_ALLOWED = networks("127.0.0.1/32")


def job_view(job_id: str = "job_01JF0000000000000000000001", state: str = "succeeded", **fields: Any) -> JobView:
    view: dict[str, Any] = {
        "id": job_id,
        "ref_id": "order-7",
        "tag": None,
        "state": state,
        "route": "chat",
        "model": "tiny",
        "key_id": KEY_ID,
        "priority": 0,
        "created_at": 1_790_000_000.0,
        "started_at": 1_790_000_001.0,
        "finished_at": 1_790_000_002.0,
        "attempts": 1,
        "provider": "local",
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        "result": {"choices": [{"message": {"role": "assistant", "content": "ok ✓"}}]},
        "error": None,
        "status_url": f"/v1/queue/{job_id}",
        "reply_to": None,
        **fields,
    }
    return view  # type: ignore[return-value]


class Secrets:
    """The key store's `webhook_secrets` as the service sees it: a key id's secrets now, current first."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[str]] = {KEY_ID: [new_webhook_secret()]}

    def __call__(self, key_id: str) -> list[str]:
        return list(self.by_key.get(key_id, []))


@pytest.fixture
def secrets() -> Secrets:
    return Secrets()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver.running() as running:
        yield running


ServiceFactory = Callable[..., contextlib.AbstractAsyncContextManager[CallbackService]]


@pytest.fixture
def callbacks(tmp_path: Path, secrets: Secrets) -> ServiceFactory:
    """Call with CallbackSettings fields (schedule_s=..., timeout_s=...) to get a started service; closed after."""

    @contextlib.asynccontextmanager
    async def running(
        *,
        path: Path | None = None,
        events: EventBus | None = None,
        registry: CollectorRegistry | None = None,
        getaddrinfo: Any = None,
        secrets: Callable[[str], list[str]] = secrets,
        close_grace_s: float = 2.0,
        **fields: Any,
    ) -> AsyncIterator[CallbackService]:
        settings = CallbackSettings(
            **{"allow": LOOPBACK_ALLOWED, "schedule_s": (0.05, 0.1), "timeout_s": 2.0, **fields}
        )
        service = CallbackService(
            path or tmp_path / "callbacks.sqlite",
            settings,
            secrets=secrets,
            events=events or EventBus(),
            metrics_registry=registry or CollectorRegistry(),
            getaddrinfo=getaddrinfo,
        )
        await service.start()
        try:
            yield service
        finally:
            await service.close(close_grace_s)

    return running


async def settled(service: CallbackService, delivery_id: str, state: DeliveryState, timeout_s: float = 10.0) -> Any:
    """Wait until the delivery is in `state`; its view."""

    async def reached() -> bool:
        return (await service.get(delivery_id))["state"] == state

    await wait_for_async(reached, f"delivery {delivery_id} to be {state}", timeout_s=timeout_s)
    return await service.get(delivery_id)
