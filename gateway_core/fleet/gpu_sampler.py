"""Samples the GPUs at a steady rate in a worker thread and hands each snapshot to the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

from gateway_core.fleet.gpus import GpuSnapshot, NvmlReader

log = logging.getLogger("corral.fleet")
DEFAULT_INTERVAL_S = 1.0
T = TypeVar("T")


class GpuSampler:
    def __init__(self, on_sample: Callable[[GpuSnapshot], None], interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.latest = GpuSnapshot(state="unavailable", reason="not sampled yet")
        self._on_sample = on_sample
        self._reader = NvmlReader()
        self._task: asyncio.Task[None] | None = None
        self._reading = asyncio.Lock()  # one NVML read at a time: the loop's and an on-demand load's

    async def sample_once(self) -> GpuSnapshot:
        async with self._reading:
            snapshot = await asyncio.to_thread(self._reader.sample)  # NVML calls block
        if snapshot.state != self.latest.state or snapshot.reason != self.latest.reason:
            if snapshot.state == "ok":
                log.info("GPUs: %d device(s), driver %s", len(snapshot.devices), snapshot.driver_version)
            else:
                log.info("GPUs unavailable: %s", snapshot.reason)
        self.latest = snapshot
        self._on_sample(snapshot)
        return snapshot

    async def read_nvml(self, read: Callable[[], T]) -> T | None:
        """Run another NVML read (per-process utilisation, say) in a worker thread, between two samples: the
        session is the sampler's, and one thread at a time may use it. None while NVML is not initialised."""
        async with self._reading:
            if self.latest.state != "ok":
                return None
            return await asyncio.to_thread(read)

    async def _run(self) -> None:
        while True:
            try:
                await self.sample_once()
            except Exception:  # a sampling bug must not stop telemetry for good
                log.exception("GPU sampling failed")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gpu-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._reader.close)
