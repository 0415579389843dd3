"""The processes on the GPUs, as nvitop shows them, under a host line as htop's header shows it.

Read from GET /gpus/processes every two seconds (nvitop's own rate): the CPU % of each process is measured by
corral-core between two looks, so the first look shows none. Opened from the dashboard's GPUs panel (t).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from console.format import duration, gib, process_memory
from console.screens.base import ConsoleHost
from console.widgets.key_hints import KeyHints
from console.widgets.live_table import Clock, LiveTable, Row
from gateway_core.client import CorralError
from gateway_core.contracts.views import HostView, ProcessesView, ProcessView

REFRESH_S = 2.0


def host_line(host: HostView) -> str:
    swap = (
        f"swap {gib(host['swap_used_bytes'])}/{gib(host['swap_total_bytes'])} GiB"
        if host["swap_total_bytes"]
        else "no swap"
    )
    load = " ".join(f"{value:.2f}" for value in host["load_average"])
    return (
        f"CPU {host['cpu_percent']:.0f}% of {host['cpu_count']} · "
        f"RAM {gib(host['memory_used_bytes'])}/{gib(host['memory_total_bytes'])} GiB · {swap} · load {load}"
    )


def owner_text(process: ProcessView) -> str:
    if process["owner_kind"] == "container":
        return f"ctr {process['owner']}"
    return process["owner"] if process["owner_kind"] == "unit" else "host"


class ProcessesTable(LiveTable):
    COLUMNS = (
        ("gpu", "GPU", 3),
        ("pid", "PID", 8),
        ("user", "USER", 10),
        ("gpu_memory", "GPU-MEM", 7),
        ("sm", "SM%", 4),
        ("cpu", "CPU%", 5),
        ("rss", "RSS", 6),
        ("time", "TIME", 7),
        ("owner", "CONTAINER/UNIT", 22),
        ("command", "COMMAND", 60),
    )
    SORTED = False  # corral-core's order: by GPU, then as NVML lists them

    def show(self, processes: list[ProcessView]) -> None:
        self.sync((f"{p['gpu_index']}:{p['pid']}", self._row(p)) for p in processes)

    def _row(self, p: ProcessView) -> Row:
        sm = p["sm_percent"]
        cpu = p["cpu_percent"]
        return (
            str(p["gpu_index"]),
            str(p["pid"]),
            (p["user"] or "-")[:10],
            process_memory(p["gpu_memory_bytes"]),
            "n/a" if sm is None else f"{sm}",
            "…" if cpu is None else f"{cpu:.0f}",
            process_memory(p["rss_bytes"]),
            duration(p["elapsed_s"]),
            self.level(owner_text(p), "muted") if p["owner_kind"] == "host" else owner_text(p),
            p["command"],
        )


class ProcessesScreen(Screen[None]):
    DEFAULT_CSS = """
    ProcessesScreen { layout: vertical; }
    ProcessesScreen #processes-title { height: 1; padding: 0 1; text-style: bold; }
    ProcessesScreen #processes-host { height: 1; padding: 0 1; }
    ProcessesScreen #processes-note { height: auto; padding: 0 1; color: $text-muted; }
    ProcessesScreen ProcessesTable { height: 1fr; max-height: 100%; }
    """
    AUTO_FOCUS = "ProcessesTable"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="processes.back", tooltip="Back to the dashboard"),
        Binding("r", "refresh_now", "Refresh", id="processes.refresh", tooltip="Look at the processes again now"),
    ]

    @dataclass
    class Loaded(Message):
        view: ProcessesView

    @dataclass
    class Failed(Message):
        reason: str

    def __init__(self, now: Clock = time.time) -> None:
        super().__init__()
        self.table = ProcessesTable(now, id="processes-table")
        self.loads = 0  # answers shown, for tests

    @property
    def host(self) -> ConsoleHost:
        return self.app  # type: ignore[return-value]  # the app is a ConsoleHost (CorralApp, or a harness)

    def compose(self) -> ComposeResult:
        yield Static("GPU processes", id="processes-title", markup=False)
        yield Static("", id="processes-host", markup=False)
        yield Static("loading…", id="processes-note", markup=False)
        yield self.table
        yield KeyHints()

    def on_mount(self) -> None:
        self.set_interval(REFRESH_S, self.load)
        self.load()

    @work(exclusive=True, group="processes")
    async def load(self) -> None:
        try:
            view = await self.host.client.gpu_processes()
        except CorralError as error:
            self.post_message(self.Failed(error.message))
            return
        self.post_message(self.Loaded(view))

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self.query_one("#processes-note", Static).update(
            f"cannot read the processes: {message.reason}; it tries again in {REFRESH_S:g} s"
        )

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        view = message.view
        self.query_one("#processes-host", Static).update(host_line(view["host"]))
        self.table.show(view["processes"])
        count = len(view["processes"])
        gpus = self.host.live.gpus
        if gpus["state"] != "ok":  # no process can be listed: say why, as the GPUs panel does
            notes = [f"GPUs unavailable: {gpus.get('reason') or 'unknown reason'}"]
        else:
            notes = [f"{count} process(es) on the GPUs" if count else "no process on the GPUs"]
        if view["sm_note"]:
            notes.append(view["sm_note"])
        self.query_one("#processes-note", Static).update(Text(" · ".join(notes)))
        self.loads += 1

    def action_refresh_now(self) -> None:
        self.load()

    def action_back(self) -> None:
        self.dismiss()
