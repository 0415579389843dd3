"""The pipeline's and the job scheduler's seam to models on demand (fleet/on_demand.py implements it): a model
whose only providers are stopped on-demand deployments is loaded, and waited for, rather than refused."""

from __future__ import annotations

from typing import Protocol

from gateway_core.contracts.errors import GatewayError
from gateway_core.providers.runtime import ProviderRuntime


class Warmer(Protocol):
    def cold(self, candidates: list[ProviderRuntime]) -> list[str]:
        """The on-demand deployments among these candidates that are not warm; [] when there are none."""
        ...

    async def warm(self, names: list[str], why: str) -> GatewayError | None:
        """Load one of them and wait until it is warm; the error to answer when it cannot be."""
        ...

    def warm_soon(self, names: list[str], why: str) -> None:
        """Load one of them without waiting (a queued job's model); its end is heard as a freed slot."""
        ...
