"""The footer: the keys that work where focus is, as one line of text.

Textual's Footer mounts a widget per key every time focus moves (the keys change with the focused panel); on a
dashboard at scale that was about 40 % of what a Tab costs (bench/README.md, "Console cost"). This shows the same
hints as one line, rewritten only when it changes. A click on a hint presses its key, as Footer's keys do.
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

# Always at the footer's right end, whatever else is cut: how to get help, the two main screens, the palette.
PINNED_IDS = ("app.help", "app.dashboard", "app.chat")
ELLIPSIS = "…"


class KeyHints(Static):
    DEFAULT_CSS = """
    KeyHints {
        dock: bottom;
        height: 1;
        width: 1fr;
        background: $footer-background;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    KeyHints > .key-hints--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    KeyHints > .key-hints--description {
        color: $footer-description-foreground;
        background: $footer-description-background;
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"key-hints--key", "key-hints--description"}

    def __init__(self) -> None:
        super().__init__("", markup=False)
        self._line = Text()
        self._spans: list[tuple[int, int, str]] = []  # (start, end, key) of each hint, for clicks

    @property
    def plain(self) -> str:
        """The hints as plain text, as they read on screen."""
        return self._line.plain

    def on_resize(self) -> None:
        self._show()  # what is cut before the pinned keys depends on the width

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._show(force=True))
        self._show()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)
        self.app.theme_changed_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if screen is self.screen:
            self._show()

    def _show(self, force: bool = False) -> None:
        line, spans = self._hints()
        if force or line != self._line:  # Text equality covers the styles too
            self._line, self._spans = line, spans
            self.update(line, layout=False)

    def _hints(self) -> tuple[Text, list[tuple[int, int, str]]]:
        """The screen's keys, then the pinned ones; when they do not all fit, the screen's are cut with an
        ellipsis so that the pinned ones still show."""
        shown = self._shown_bindings()
        pinned = [hint for hint in shown if hint[0].id in PINNED_IDS or hint[0].key == self.app.COMMAND_PALETTE_BINDING]
        rest = [hint for hint in shown if hint not in pinned]
        line, spans = self._line_of(rest)
        tail, tail_spans = self._line_of(pinned)
        width = self.size.width
        if width and len(line) + len(tail) > width:
            room = max(0, width - len(tail) - len(ELLIPSIS))
            line = line[:room]
            line.append(ELLIPSIS)
            spans = [(start, min(end, room), key) for start, end, key in spans if start < room]
        offset = len(line)
        line.append_text(tail)
        spans += [(start + offset, end + offset, key) for start, end, key in tail_spans]
        return line, spans

    def _line_of(self, hints: list[tuple[Binding, bool]]) -> tuple[Text, list[tuple[int, int, str]]]:
        key_style = self.get_component_rich_style("key-hints--key", partial=True)
        description_style = self.get_component_rich_style("key-hints--description", partial=True)
        line = Text(end="")
        spans: list[tuple[int, int, str]] = []
        for binding, enabled in hints:
            dim = Style(dim=not enabled)
            start = len(line)
            line.append(f" {self.app.get_key_display(binding)} ", key_style + dim)
            line.append(f"{binding.description} ", description_style + dim)
            spans.append((start, len(line), binding.key))
        return line, spans

    def _shown_bindings(self) -> list[tuple[Binding, bool]]:
        """One binding per action, in Footer's order, with the command palette's last."""
        active = self.screen.active_bindings
        by_action: dict[str, tuple[Binding, bool]] = {}
        palette: tuple[Binding, bool] | None = None
        for key, (_node, binding, enabled, _tooltip) in active.items():
            if key == self.app.COMMAND_PALETTE_BINDING and self.app.ENABLE_COMMAND_PALETTE:
                palette = (binding, enabled)
            elif binding.show:
                by_action.setdefault(binding.action, (binding, enabled))
        return [*by_action.values(), *([palette] if palette else [])]

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
