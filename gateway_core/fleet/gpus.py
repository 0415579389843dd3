"""GPU telemetry through NVML (nvidia-ml-py).

NVML calls block, so callers on the event loop run `NvmlReader.sample` in a worker thread.
A missing driver or library is a state ("unavailable", with the reason), never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import pynvml

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GpuProcess:
    pid: int
    name: str
    used_memory_bytes: int | None


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


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    state: Literal["ok", "unavailable"]
    reason: str = ""
    driver_version: str = ""
    devices: tuple[GpuDevice, ...] = ()
    sampled_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for device in data["devices"]:
            device["unsupported"] = sorted(device["unsupported"])
        return data


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


def _memory_info(handle: object) -> object:
    """The v2 query, whose `used` excludes driver-reserved memory as nvidia-smi shows it; v1 on older drivers."""
    try:
        return pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    except pynvml.NVMLError_FunctionNotFound:
        return pynvml.nvmlDeviceGetMemoryInfo(handle)


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""  # the process is gone, or lives in another PID namespace
