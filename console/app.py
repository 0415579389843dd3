"""The Corral console: a Textual app over corral-core's admin socket."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import httpx
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.widgets import Footer, Header, Static

from .themes import load_themes

DEFAULT_THEME = "corral-dark"


class ConnectionPanel(Static):
    """Says whether corral-core answers on the admin socket."""

    status: reactive[str] = reactive("connecting…")

    def watch_status(self, status: str) -> None:
        self.update(status)


class CorralApp(App[None]):
    TITLE = "Corral"
    SUB_TITLE = "AI gateway console"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("r", "reconnect", "Reconnect", id="reconnect"),
    ]

    def __init__(self, socket_path: Path) -> None:
        super().__init__()
        self.socket_path = socket_path

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionPanel(id="connection")
        yield Footer()

    def on_mount(self) -> None:
        loaded = load_themes()
        for theme in loaded.themes:
            self.register_theme(theme)
        if any(theme.name == DEFAULT_THEME for theme in loaded.themes):
            self.theme = DEFAULT_THEME
        for problem in loaded.problems:
            self.notify(problem, severity="warning")
        self.action_reconnect()

    def action_reconnect(self) -> None:
        self.probe_daemon()

    @work(exclusive=True, group="connection")
    async def probe_daemon(self) -> None:
        panel = self.query_one(ConnectionPanel)
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket_path))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://corral", timeout=2.0) as client:
                response = await client.get("/health")
            panel.status = f"corral-core answers on {self.socket_path} (HTTP {response.status_code})"
        except httpx.TransportError as error:
            panel.status = (
                f"corral-core is not answering on {self.socket_path}: {error or type(error).__name__}.\n"
                "Start it with `corral-core`, then press r to reconnect."
            )
