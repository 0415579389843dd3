"""Follow one deployment's llama-server logs, live, with a bounded scrollback."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Log, Static

from console.screens.base import LiveScreen
from console.screens.form_base import FORMS_CSS
from console.widgets.key_hints import KeyHints
from gateway_core.client import CorralError

MAX_LINES = 5000
# Lines are buffered and written in batches: a chatty server must not cost a repaint per line.
FLUSH_INTERVAL_S = 0.1


class LogsScreen(LiveScreen):
    """`client.follow_logs(deployment)` into a Log; it scrolls with new lines unless you scrolled up or paused."""

    CSS_PATH: ClassVar[str] = FORMS_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow", id="logs.follow", tooltip="Keep scrolling to new lines, or stop"),
        Binding("escape", "back", "Back", id="logs.back", tooltip="Stop following and go back"),
    ]

    following: reactive[bool] = reactive(True, init=False)
    stopped: reactive[str] = reactive("", init=False)

    @dataclass
    class Stopped(Message):
        reason: str

    def __init__(self, deployment: str, *, max_lines: int = MAX_LINES) -> None:
        super().__init__()
        self.deployment = deployment
        self.max_lines = max_lines
        self._pending: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="logs-title")
        yield Log(max_lines=self.max_lines, auto_scroll=True, id="log")
        yield KeyHints()

    def on_mount(self) -> None:
        self._show_title()
        self.query_one(Log).focus()
        self.set_interval(FLUSH_INTERVAL_S, self.flush)
        self.follow()

    @work(exclusive=True, group="logs-follow")
    async def follow(self) -> None:
        try:
            async with contextlib.aclosing(self.host.client.follow_logs(self.deployment)) as lines:
                async for line in lines:
                    self._pending.append(line)
                    if len(self._pending) > self.max_lines:
                        del self._pending[: -self.max_lines]
        except CorralError as error:
            self.post_message(self.Stopped(f"cannot follow: {error.message}"))
            return
        self.post_message(self.Stopped("the log stream ended (the container stopped or was removed)"))

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = self._pending, []
            self.query_one(Log).write_lines(lines)

    def on_logs_screen_stopped(self, event: LogsScreen.Stopped) -> None:
        self.flush()
        self.stopped = event.reason

    def watch_following(self, following: bool) -> None:
        log = self.query_one(Log)
        log.auto_scroll = following
        if following:
            log.scroll_end(animate=False)
        self._show_title()

    def watch_stopped(self) -> None:
        self._show_title()

    def _show_title(self) -> None:
        title = self.query_one("#logs-title", Static)
        state = "following" if self.following else "paused (f to follow)"
        title.update(f"logs of {self.deployment}: {self.stopped or state}")
        title.set_class(not self.following or bool(self.stopped), "-paused")

    def action_toggle_follow(self) -> None:
        self.following = not self.following

    def action_back(self) -> None:
        self.dismiss()
