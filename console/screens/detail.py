"""One thing in full (Enter on its row): a deployment, a provider, a key or a live request.

`DetailScreen` is the frame all four share: a title, sections of facts that follow the event stream while they
show, what corral-core is asked once on opening (a deployment's command and environment, recent failed requests
from the archive), and keys to copy all of it as JSON or YAML. Each kind says only what it shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from console.detail_format import (
    Section,
    as_json,
    as_yaml,
    ended_facts,
    error_lines,
    key_sections,
    provider_sections,
    render,
    request_sections,
)
from console.live_state import LiveState
from console.screens.base import LiveScreen
from console.widgets.key_hints import KeyHints
from console.widgets.live_table import Clock
from gateway_core.client import CorralError
from gateway_core.contracts.history_views import HistoryRowView
from gateway_core.contracts.views import LiveRequestView, RequestEnd

DETAIL_CSS = str(Path(__file__).parent.parent / "styles" / "detail.tcss")
RECENT_ERRORS = 5  # failed requests the archive is asked for


class DetailScreen(LiveScreen):
    """Override `sections` and `data` (and `fetch` for what only corral-core's routes know)."""

    CSS_PATH: ClassVar[str] = DETAIL_CSS
    AUTO_FOCUS = "#detail-scroll"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,i", "back", "Back", id="detail.back", tooltip="Back to where you were"),
        Binding("c", "copy('json')", "Copy JSON", id="detail.copy_json", tooltip="Copy everything shown as JSON"),
        Binding("y", "copy('yaml')", "Copy YAML", id="detail.copy_yaml", tooltip="Copy everything shown as YAML"),
        Binding("r", "refresh", "Refresh", id="detail.refresh", tooltip="Ask corral-core again (log errors, failures)"),
    ]
    KIND = "item"
    LIVE_SECTIONS: ClassVar[frozenset[str]] = frozenset()  # LiveState sections that redraw it

    @dataclass
    class Fetched(Message):
        found: dict[str, Any]  # what `fetch` returned, by name
        failures: list[str]

    def __init__(self, subject: str, now: Clock = time.time) -> None:
        super().__init__()
        self.subject = subject
        self.now = now
        self.fetched: dict[str, Any] = {}
        self.failures: list[str] = []
        self.loading = True

    def compose(self) -> ComposeResult:
        yield Static(f"{self.KIND.capitalize()} {self.subject}", id="detail-title", markup=False)
        with VerticalScroll(id="detail-scroll"):
            yield Static("", id="detail-facts", markup=False)
        yield KeyHints()

    def on_mount(self) -> None:
        self.redraw()
        self.set_interval(1.0, self.redraw)  # ages ("12s ago") move without events
        self.load()

    def live_changed(self, live: LiveState, changed: set[str]) -> None:
        if changed & self.LIVE_SECTIONS:
            self.redraw()

    # -- what each kind says --------------------------------------------------------------------------

    def sections(self, live: LiveState, now: float) -> list[Section]:
        raise NotImplementedError

    def data(self, live: LiveState) -> dict[str, Any]:
        """Everything shown, as the wire views hold it: what the copy keys copy."""
        raise NotImplementedError

    async def fetch(self) -> dict[str, Any]:
        """What only corral-core's routes know, fetched once on opening; raise CorralError to say why not."""
        return {}

    async def recent_errors(self, **where: str) -> list[HistoryRowView]:
        page = await self.host.client.history(status="error", limit=RECENT_ERRORS, **where)
        return page["rows"]

    # -- the frame ------------------------------------------------------------------------------------

    @work(exclusive=True, group="detail-fetch")
    async def load(self) -> None:
        if getattr(self.host, "client", None) is None:  # a harness with no daemon: the live state is all
            self.post_message(self.Fetched({}, []))
            return
        try:
            found = await self.fetch()
        except CorralError as error:
            self.post_message(self.Fetched({}, [error.message]))
            return
        self.post_message(self.Fetched(found, []))

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        self.fetched, self.failures, self.loading = message.found, message.failures, False
        self.redraw()

    def redraw(self) -> None:
        live = self.host.live
        sections = self.sections(live, self.now())
        if self.failures:
            sections.append(("what corral-core could not tell", self.failures))
        text = render(sections)
        if self.loading:
            text.append("\n\nasking corral-core for the rest…", style="dim")
        self.query_one("#detail-facts", Static).update(text)

    def action_copy(self, form: str) -> None:
        data = {**self.data(self.host.live), **self.fetched}
        self.app.copy_to_clipboard(as_json(data) if form == "json" else as_yaml(data))
        self.notify(f"copied {self.KIND} {self.subject} as {form.upper()}")

    def action_refresh(self) -> None:
        self.loading = True
        self.redraw()
        self.load()

    def action_back(self) -> None:
        self.dismiss()


class ProviderDetailScreen(DetailScreen):
    KIND = "provider"
    LIVE_SECTIONS = frozenset({"providers"})

    async def fetch(self) -> dict[str, Any]:
        return {"recent_errors": await self.recent_errors(provider=self.subject)}

    def sections(self, live: LiveState, now: float) -> list[Section]:
        provider = live.providers.get(self.subject)
        if provider is None:
            return [("provider", [f"corral-core lists no provider named {self.subject} (it was removed)"])]
        return [
            *provider_sections(provider, now),
            ("recent failed requests (the archive)", error_lines(self.fetched.get("recent_errors", []))),
        ]

    def data(self, live: LiveState) -> dict[str, Any]:
        return {"provider": live.providers.get(self.subject)}


class KeyDetailScreen(DetailScreen):
    KIND = "key"
    LIVE_SECTIONS = frozenset({"keys"})

    async def fetch(self) -> dict[str, Any]:
        return {"recent_errors": await self.recent_errors(key=self.subject)}

    def sections(self, live: LiveState, now: float) -> list[Section]:
        key = live.keys.get(self.subject)
        if key is None:
            return [("key", [f"corral-core lists no key {self.subject} (it was deleted)"])]
        return [
            *key_sections(key, now),
            ("recent failed requests (the archive)", error_lines(self.fetched.get("recent_errors", []))),
        ]

    def data(self, live: LiveState) -> dict[str, Any]:
        return {"key": live.keys.get(self.subject)}

    def on_mount(self) -> None:
        key = self.host.live.keys.get(self.subject)
        if key is not None:
            self.query_one("#detail-title", Static).update(f"Key {key['name']} ({self.subject})")
        super().on_mount()


class RequestDetailScreen(DetailScreen):
    """A live request: what its view holds while it runs, and how it ended once it has (a finished row's too)."""

    KIND = "request"
    LIVE_SECTIONS = frozenset({"requests"})

    def __init__(self, subject: str, now: Clock = time.time) -> None:
        super().__init__(subject, now)
        self.last_seen: LiveRequestView | None = None

    def _ended(self, live: LiveState) -> RequestEnd | None:
        return next((r for r in reversed(live.recent_finished) if r["id"] == self.subject), None)

    def sections(self, live: LiveState, now: float) -> list[Section]:
        request = live.requests.get(self.subject)
        if request is not None:
            self.last_seen = request
            return request_sections(request, now)
        ended = self._ended(live)
        if ended is not None:
            return [*request_sections(ended, now), ("how it ended", ended_facts(ended))]
        if self.last_seen is None:
            return [("request", [f"{self.subject} is no longer in flight; F4 History shows it once archived"])]
        gone = [("request", [f"it ended; F4 History shows how (its id is {self.subject})"])]
        return [*request_sections(self.last_seen, now), *gone]

    def data(self, live: LiveState) -> dict[str, Any]:
        request = live.requests.get(self.subject)
        return {"request": request if request is not None else self._ended(live) or self.last_seen}
