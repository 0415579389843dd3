"""One archived request: its metadata, the request body (JSON indented), and the answer rendered as Markdown.

The bodies are as the archive stored them: capped (the heading says where and of what size) and redacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Markdown, Static

from console.format import answer_text, body_heading, history_facts, pretty_json, response_shown
from console.screens.base import ConsoleHost
from console.widgets.key_hints import KeyHints
from gateway_core.client import CorralError
from gateway_core.contracts.history_views import HistoryDetailView

HISTORY_CSS = str(Path(__file__).parent.parent / "styles" / "history.tcss")


def facts_text(entry: HistoryDetailView) -> Text:
    pairs = history_facts(entry)
    width = max(len(name) for name, _ in pairs)
    text = Text()
    for index, (name, value) in enumerate(pairs):
        text.append(name.ljust(width), style="bold")
        text.append(f"  {value}" + ("\n" if index < len(pairs) - 1 else ""))
    return text


class HistoryDetailScreen(Screen[None]):
    CSS_PATH: ClassVar[str] = HISTORY_CSS
    AUTO_FOCUS = "#detail-scroll"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="history.back", tooltip="Back to the list"),
        Binding("r", "raw", "Raw answer", id="history.raw", tooltip="The answer's stored body, or its Markdown"),
    ]

    @dataclass
    class Loaded(Message):
        entry: HistoryDetailView

    @dataclass
    class Failed(Message):
        reason: str

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id
        self.entry: HistoryDetailView | None = None
        self.raw = False

    def compose(self) -> ComposeResult:
        yield Static(f"Request {self.request_id}", id="detail-title", markup=False)
        with VerticalScroll(id="detail-scroll"):
            yield Static("loading…", id="detail-facts", markup=False)
            yield Static("", id="detail-request-heading", classes="detail-heading", markup=False)
            yield Static("", id="detail-request", classes="detail-body", markup=False)
            yield Static("", id="detail-response-heading", classes="detail-heading", markup=False)
            yield Markdown("", id="detail-answer")
            yield Static("", id="detail-response", classes="detail-body", markup=False)
        yield KeyHints()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="history-entry")
    async def load(self) -> None:
        host: ConsoleHost = self.app  # type: ignore[assignment]  # the app is a ConsoleHost (CorralApp, or a harness)
        try:
            entry = await host.client.history_entry(self.request_id)
        except CorralError as error:
            self.post_message(self.Failed(error.message))
            return
        self.post_message(self.Loaded(entry))

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self.query_one("#detail-facts", Static).update(f"cannot show {self.request_id}: {message.reason}")

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        entry = self.entry = message.entry
        self.query_one("#detail-facts", Static).update(facts_text(entry))
        request = entry["request_body"]
        self.query_one("#detail-request-heading", Static).update(
            body_heading("request body", request, entry["request_bytes"], entry["request_truncated"], entry["capture"])
        )
        self.query_one("#detail-request", Static).update(pretty_json(request) if request is not None else "")
        self.query_one("#detail-request", Static).display = request is not None
        self._show_response()

    def _show_response(self) -> None:
        entry = self.entry
        if entry is None:
            return
        body = entry["response_body"]
        what = "response (the answer's text)" if entry["response_format"] == "text" else "response"
        heading = body_heading(what, body, entry["response_bytes"], entry["response_truncated"], entry["capture"])
        answer = answer_text(body, entry["response_format"]) if entry["status"] < 400 else None
        markdown = answer is not None and not self.raw
        if answer is not None:
            heading += " · raw body (r)" if markdown else " · as Markdown (r)"
        self.query_one("#detail-response-heading", Static).update(heading)
        answer_view = self.query_one("#detail-answer", Markdown)
        answer_view.display = markdown
        if markdown:
            answer_view.update(answer or "")
        raw = self.query_one("#detail-response", Static)
        shown = None if markdown or body is None else pretty_json(body) if self.raw else response_shown(entry)
        raw.display = shown is not None
        raw.update(shown or "")

    def action_raw(self) -> None:
        self.raw = not self.raw
        self._show_response()

    def action_back(self) -> None:
        self.dismiss()
