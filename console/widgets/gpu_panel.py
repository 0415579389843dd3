"""GPUs as compact lines: utilization and memory bars, temperature, power and the processes on each device.
H opens the GPUs' history (an hour, as graphs) and t their processes as nvitop lists them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from console.format import dash, gib, process_memory
from console.screens.gpu_history import GpuHistoryScreen
from console.screens.processes import ProcessesScreen
from console.widgets.live_table import LiveTable, Row
from gateway_core.contracts.fleet_views import GpuDeviceView, GpuSnapshotView

EIGHTHS = " ▏▎▍▌▋▊▉"
NO_DRIVER = "no NVIDIA driver"


def gpu_notice(gpus: GpuSnapshotView) -> str | None:
    """What to say instead of devices: None when the sampler works."""
    if gpus.get("state") == "ok":
        return None
    reason = str(gpus.get("reason") or "unknown reason")
    if reason == "connecting":
        return "waiting for corral-core…"
    if reason.startswith(NO_DRIVER):
        return f"{NO_DRIVER}: {reason[len(NO_DRIVER) :].lstrip(': ')}"
    return f"{NO_DRIVER}: {reason}" if "driver" in reason or "libnvidia" in reason else f"GPUs unavailable: {reason}"


def gpu_summary(gpus: GpuSnapshotView) -> str:
    if gpus.get("state") != "ok":
        return "unavailable"
    devices = gpus.get("devices") or []
    driver = gpus.get("driver_version")
    return f"{len(devices)} device{'s' if len(devices) != 1 else ''}" + (f" · driver {driver}" if driver else "")


class GpuTable(LiveTable):
    COLUMNS = (
        ("index", "#", 2),
        ("name", "name", 16),
        ("util", "util", 12),
        ("memory", "memory", 20),
        ("temp", "temp", 5),
        ("power", "power", 9),
        ("processes", "processes", 40),
    )
    SORTED = False  # NVML order is index order
    BAR_WIDTH = 7
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("H", "history", "GPU history", id="gpu.history", tooltip="Graphs of the GPUs over the last hour"),
        Binding("t", "processes", "Processes", id="gpu.processes", tooltip="The GPUs' processes, as nvitop lists them"),
    ]

    def action_history(self) -> None:
        self.app.push_screen(GpuHistoryScreen())

    def action_processes(self) -> None:
        self.app.push_screen(ProcessesScreen(self.now))

    def show(self, devices: Sequence[GpuDeviceView]) -> None:
        self.sync((str(d.get("uuid") or d["index"]), self._row(d)) for d in devices)

    def _row(self, d: GpuDeviceView) -> Row:
        util = d.get("utilization_percent")
        used, total = d.get("memory_used_bytes"), d.get("memory_total_bytes")
        temp = d.get("temperature_c")
        return (
            str(d["index"]),
            d.get("name", ""),
            "-" if util is None else self.bar(util / 100, f"{util:3d}%"),
            "-" if used is None or not total else self.bar(used / total, f"{gib(used)}/{gib(total)}G"),
            "-" if temp is None else self.level(f"{temp}°C", "bad" if temp >= 85 else "warn" if temp >= 75 else "ok"),
            self._power(d.get("power_draw_watts"), d.get("power_limit_watts")),
            ", ".join(
                f"{p.get('name') or '?'}({p['pid']}) {process_memory(p.get('used_memory_bytes'))}"
                for p in d.get("processes") or ()
            )
            or self.level("idle", "muted"),
        )

    def bar(self, fraction: float, label: str) -> Text:
        fraction = min(1.0, max(0.0, fraction))
        eighths = round(fraction * self.BAR_WIDTH * 8)
        full, part = divmod(eighths, 8)
        filled = "█" * full + (EIGHTHS[part] if part else "")
        level = "bad" if fraction >= 0.9 else "warn" if fraction >= 0.7 else "ok"
        text = Text(end="")
        text.append(filled, self.level_style(level))
        text.append("·" * (self.BAR_WIDTH - len(filled)), self.level_style("muted"))
        text.append(f" {label}")
        return text

    @staticmethod
    def _power(draw: float | None, limit: float | None) -> str:
        if draw is None and limit is None:
            return "-"
        return f"{dash(None if draw is None else round(draw))}/{dash(None if limit is None else round(limit))}W"
