"""One queued job: its status object (`corral jobs show`'s lines) and its result, fetched once when opened."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from console.job_format import job_facts
from console.screens.base import ConsoleHost
from console.screens.history_detail import HISTORY_CSS
from console.widgets.key_hints import KeyHints
from console.widgets.live_table import Clock
from gateway_core.client import CorralError
from gateway_core.contracts.jobs import JobView


def job_text(job: JobView, key_name: str | None, now: float) -> Text:
    pairs = job_facts(job, key_name, now)
    width = max(len(name) for name, _ in pairs)
    text = Text()
    for index, (name, value) in enumerate(pairs):
        text.append(name.ljust(width), style="bold")
        text.append(f"  {value}" + ("\n" if index < len(pairs) - 1 else ""))
    return text


class JobDetailScreen(Screen[None]):
    CSS_PATH: ClassVar[str] = HISTORY_CSS  # the History detail's layout: a title line over a scrolling body
    AUTO_FOCUS = "#detail-scroll"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="job.back", tooltip="Back to the dashboard"),
    ]

    @dataclass
    class Loaded(Message):
        job: JobView

    @dataclass
    class Failed(Message):
        reason: str

    def __init__(self, job_id: str, now: Clock = time.time) -> None:
        super().__init__()
        self.job_id = job_id
        self.now = now

    def compose(self) -> ComposeResult:
        yield Static(f"Job {self.job_id}", id="detail-title", markup=False)
        with VerticalScroll(id="detail-scroll"):
            yield Static("loading…", id="detail-facts", markup=False)
            yield Static("", id="detail-response-heading", classes="detail-heading", markup=False)
            yield Static("", id="detail-response", classes="detail-body", markup=False)
        yield KeyHints()

    def on_mount(self) -> None:
        self.load()

    @property
    def host(self) -> ConsoleHost:
        return self.app  # type: ignore[return-value]  # the app is a ConsoleHost (CorralApp, or a harness)

    @work(exclusive=True, group="job-detail")
    async def load(self) -> None:
        try:
            job = await self.host.client.job(self.job_id)
        except CorralError as error:
            self.post_message(self.Failed(error.message))
            return
        self.post_message(self.Loaded(job))

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self.query_one("#detail-facts", Static).update(f"cannot show {self.job_id}: {message.reason}")

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        job = message.job
        key = self.host.live.keys.get(job["key_id"])
        self.query_one("#detail-facts", Static).update(job_text(job, key["name"] if key else None, self.now()))
        result = job["result"]
        heading = "result (the OpenAI answer)" if result is not None else f"no result: the job is {job['state']}"
        self.query_one("#detail-response-heading", Static).update(heading)
        body = self.query_one("#detail-response", Static)
        body.display = result is not None
        body.update(json.dumps(result, indent=2, ensure_ascii=False) if result is not None else "")

    def action_back(self) -> None:
        self.dismiss()
