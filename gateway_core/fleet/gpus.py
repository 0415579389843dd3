"""GPU telemetry through NVML (nvidia-ml-py).

NVML calls block, so callers on the event loop run `NvmlReader.sample` in a worker thread.
A missing driver or library is a state ("unavailable", with the reason), never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import pynvml

from gateway_core.contracts.fleet_views import GpuDeviceView, GpuProcessView, GpuSnapshotView

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GpuProcess:
    pid: int
    name: str
    used_memory_bytes: int | None

    def to_dict(self) -> GpuProcessView:
        return {"pid": self.pid, "name": self.name, "used_memory_bytes": self.used_memory_bytes}


@dataclass(frozen=True, slots=True)
class GpuDevice:
    index: int
    uuid: str
    name: str
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    utilization_percent: int | None = None
    temperature_c: int | None = None
    power_draw_watts: float | None = None
    power_limit_watts: float | None = None
    fan_percent: int | None = None
    processes: tuple[GpuProcess, ...] = ()
    # Names of the readings this device does not support (their values are None).
    unsupported: frozenset[str] = field(default_factory=frozenset)

    def to_dict(self) -> GpuDeviceView:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "memory_total_bytes": self.memory_total_bytes,
            "memory_used_bytes": self.memory_used_bytes,
            "utilization_percent": self.utilization_percent,
            "temperature_c": self.temperature_c,
            "power_draw_watts": self.power_draw_watts,
            "power_limit_watts": self.power_limit_watts,
            "fan_percent": self.fan_percent,
            "processes": [process.to_dict() for process in self.processes],
            "unsupported": sorted(self.unsupported),
        }


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    state: Literal["ok", "unavailable"]
    reason: str = ""
    driver_version: str = ""
    devices: tuple[GpuDevice, ...] = ()
    sampled_at: float = field(default_factory=time.time)

    def to_dict(self) -> GpuSnapshotView:
        return {
            "state": self.state,
            "reason": self.reason,
            "driver_version": self.driver_version,
            "devices": [device.to_dict() for device in self.devices],
            "sampled_at": self.sampled_at,
        }


class NvmlReader:
    """Owns one NVML session; `sample()` reads every device once."""

    def __init__(self) -> None:
        self._initialised = False

    def sample(self) -> GpuSnapshot:
        if not self._initialised:
            try:
                pynvml.nvmlInit()
            except pynvml.NVMLError as error:
                return GpuSnapshot(state="unavailable", reason=_explain_init_failure(error))
            self._initialised = True
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            count = pynvml.nvmlDeviceGetCount()
            devices = tuple(_read_device(index) for index in range(count))
        except pynvml.NVMLError as error:
            return GpuSnapshot(state="unavailable", reason=f"NVML failed while reading devices: {error}")
        return GpuSnapshot(state="ok", driver_version=str(driver), devices=devices)

    def close(self) -> None:
        if self._initialised:
            pynvml.nvmlShutdown()
            self._initialised = False


def _explain_init_failure(error: pynvml.NVMLError) -> str:
    if isinstance(error, pynvml.NVMLError_LibraryNotFound):
        return "no NVIDIA driver: libnvidia-ml.so.1 was not found (install the NVIDIA driver to see GPUs)"
    if isinstance(error, pynvml.NVMLError_DriverNotLoaded):
        return "no NVIDIA driver: the NVIDIA kernel driver is not loaded"
    return f"NVML could not start: {error}"


def _read_device(index: int) -> GpuDevice:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    unsupported: set[str] = set()

    def optional(name: str, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
            unsupported.add(name)
            return None

    memory = optional("memory", lambda: _memory_info(handle))
    utilization = optional("utilization", lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
    power_mw = optional("power_draw", lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
    limit_mw = optional("power_limit", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))
    processes = optional("processes", lambda: pynvml.nvmlDeviceGetComputeRunningProcesses(handle)) or []
    return GpuDevice(
        index=index,
        uuid=str(pynvml.nvmlDeviceGetUUID(handle)),
        name=str(pynvml.nvmlDeviceGetName(handle)),
        memory_total_bytes=memory.total if memory else None,
        memory_used_bytes=memory.used if memory else None,
        utilization_percent=utilization.gpu if utilization else None,
        temperature_c=optional(
            "temperature", lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        ),
        power_draw_watts=power_mw / 1000 if power_mw is not None else None,
        power_limit_watts=limit_mw / 1000 if limit_mw is not None else None,
        fan_percent=optional("fan", lambda: pynvml.nvmlDeviceGetFanSpeed(handle)),
        processes=tuple(
            GpuProcess(pid=p.pid, name=_process_name(p.pid), used_memory_bytes=p.usedGpuMemory) for p in processes
        ),
        unsupported=frozenset(unsupported),
    )


class _MemoryInfo(Protocol):
    """The fields read from NVML's memory struct (pynvml ships no types)."""

    total: int
    used: int


def _memory_info(handle: object) -> _MemoryInfo:
    """The v2 query, whose `used` excludes driver-reserved memory as nvidia-smi shows it; v1 on older drivers."""
    info: _MemoryInfo  # pynvml's calls are untyped (Any); this names what is read from the answer
    try:
        info = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    except pynvml.NVMLError_FunctionNotFound:
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return info


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""  # the process is gone, or lives in another PID namespace
