"""What every console screen can rely on: the app's admin client and the live state from the event stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from textual.screen import Screen
from textual.widgets import Static

from console.live_state import LiveState

if TYPE_CHECKING:
    from gateway_core.client import CorralClient


class ConsoleHost(Protocol):
    """The app as screens see it (CorralApp in production, a small harness in tests)."""

    client: CorralClient
    live: LiveState


class LiveScreen(Screen[None]):
    """A screen that redraws from LiveState. The app calls `live_changed` after each batch of events."""

    @property
    def host(self) -> ConsoleHost:
        return self.app  # type: ignore[return-value]  # Screen.app is the base App; ours is a ConsoleHost

    def live_changed(self, live: LiveState, changed: set[str]) -> None:
        """Refresh what shows `changed` sections (see console.live_state.SECTIONS). Override in screens."""

    def set_connection_banner(self, text: str | None) -> None:
        """Show (or, with None, hide) a banner saying the daemon is out of reach."""
        banners = self.query(ConnectionBanner)
        if text is None:
            banners.remove()
        elif banners:
            banners.first().update(text)
        else:
            self.mount(ConnectionBanner(text), before=0)


class ConnectionBanner(Static):
    DEFAULT_CSS = """
    ConnectionBanner {
        dock: top;
        height: 1;
        background: $error;
        color: $text;
        text-style: bold;
        padding: 0 1;
    }
    """
