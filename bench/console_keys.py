"""What the console benchmark types, and how it tells that each key was answered.

A key is answered by the first frame drawn after it was written that shows its effect: the cursor on the next
row, focus on another panel, the help or chat screen open, one more character in an input. Its latency is that
frame's time minus the time the key was written. Keys are spaced by a seeded random gap, so they land at every
phase of the console's 0.25 s redraw and the daemon's 1 Hz updates.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.console_terminal import ConsoleTerminal, Record

KEY_TIMEOUT_S = 5.0
GAP_S = (0.15, 0.4)
# One tour of the dashboard: rows in the focused table, the next panel, help, the chat and back.
DASHBOARD_TOUR = ("down", "down", "down", "tab", "down", "down", "up", "?", "q", "tab", "f3", "f2")
NAVIGATION_LIMIT = 10
CLEAR_S = 1.0
CLEAR_LIMIT = 200


@dataclass
class KeyLog:
    """Latencies in ms by key; a key that no frame answered within KEY_TIMEOUT_S counts as a timeout."""

    latencies: list[tuple[str, float]] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)


def _table_rows(record: Record) -> int:
    focus = record.get("focus") or ""
    return (record.get("rows") or {}).get(focus.removesuffix("-table"), 0)


def expectation(key: str, before: Record) -> tuple[str, Callable[[Record], bool]]:
    """The key to press (a cursor move that cannot move turns around) and what its answer looks like."""
    focus, cursor = before.get("focus"), before.get("cursor")
    if key in ("down", "up") and cursor is not None:
        rows = _table_rows(before)
        if key == "down" and cursor >= rows - 1:
            key = "up"
        if key == "up" and cursor <= 0:
            key = "down"
        target = cursor + (1 if key == "down" else -1)
        return key, lambda r: r.get("focus") == focus and r.get("cursor") == target
    if key in ("tab", "shift+tab"):
        return key, lambda r: r.get("focus") not in (None, focus)
    screens = {"?": "HelpScreen", "q": "DashboardScreen", "f3": "ChatScreen", "f2": "DashboardScreen"}
    if key in screens:
        return key, lambda r: r.get("screen") == screens[key]
    length = before.get("value")
    if length is not None and len(key) == 1:
        return key, lambda r: r.get("focus") == focus and r.get("value") == length + 1
    raise ValueError(f"no way to tell that {key!r} was answered from {before}")


def press(terminal: ConsoleTerminal, key: str, log: KeyLog | None = None) -> Record | None:
    """Press `key` once the previous frame is known, wait for its answer, and log the latency."""
    before = terminal.latest() or {}
    key, answered = expectation(key, before)
    written_at = terminal.press(key)
    record = terminal.wait_for(answered, written_at, KEY_TIMEOUT_S)
    if log is not None:
        if record is None:
            log.timeouts.append(key)
        else:
            log.latencies.append((key, 1000 * (record["t"] - written_at)))
    return record


def tour_dashboard(
    terminal: ConsoleTerminal, presses: int, rng: random.Random, going_on: Callable[[], bool] = lambda: True
) -> KeyLog:
    """Up to `presses` keys of the tour, while `going_on()` holds."""
    log = KeyLog()
    for index in range(presses):
        time.sleep(rng.uniform(*GAP_S))
        if not going_on():
            break
        press(terminal, DASHBOARD_TOUR[index % len(DASHBOARD_TOUR)], log)
    return log


def focus(terminal: ConsoleTerminal, widget_id: str, key: str) -> None:
    """Press `key` (tab or shift+tab) until `widget_id` has focus."""
    for _ in range(NAVIGATION_LIMIT):
        if (terminal.latest() or {}).get("focus") == widget_id:
            return
        if press(terminal, key) is None:
            break
    raise RuntimeError(f"could not move focus to #{widget_id}: {terminal.latest()}")


def clear_input(terminal: ConsoleTerminal) -> None:
    """Empty the focused input with backspaces (focus may select its text: then one deletes it all)."""
    for _ in range(CLEAR_LIMIT):
        length = (terminal.latest() or {}).get("value")
        if length == 0:
            return
        written_at = terminal.press("backspace")
        if terminal.wait_for(lambda r, length=length: r.get("value", 0) < length, written_at, KEY_TIMEOUT_S) is None:
            break
    raise RuntimeError(f"could not clear #{(terminal.latest() or {}).get('focus')}: {terminal.latest()}")


def type_text(terminal: ConsoleTerminal, text: str) -> None:
    for character in text:
        if press(terminal, character) is None:
            raise RuntimeError(f"{character!r} was not answered: {terminal.latest()}")


def stream_chat(
    terminal: ConsoleTerminal, max_tokens: int, typed_keys: int, rng: random.Random, timeout_s: float
) -> tuple[KeyLog, Record | None, float]:
    """In the chat: set max tokens, send a prompt, and type into the prompt while the answer streams.

    Returns the keys typed before the answer finished, the frame that showed it finished, and when it was sent.
    """
    if press(terminal, "f3") is None:
        raise RuntimeError(f"the chat did not open: {terminal.latest()}")
    terminal.press("ctrl+l")  # a new conversation, so an earlier answer adds nothing to this one's cost
    time.sleep(CLEAR_S)
    focus(terminal, "chat-max-tokens", "shift+tab")
    clear_input(terminal)
    type_text(terminal, str(max_tokens))
    focus(terminal, "chat-prompt", "tab")
    clear_input(terminal)  # what was typed while an earlier answer streamed
    type_text(terminal, "go")
    answers = (terminal.latest() or {}).get("answers", 0)
    sent_at = terminal.press("enter")
    if terminal.wait_for(lambda r: r.get("value") == 0, sent_at, KEY_TIMEOUT_S) is None:
        raise RuntimeError(f"the prompt was not sent: {terminal.latest()}")
    log = KeyLog()
    deadline = sent_at + timeout_s
    for _ in range(typed_keys):
        time.sleep(rng.uniform(*GAP_S))
        latest = terminal.latest() or {}
        if latest.get("answers", 0) > answers or time.monotonic() > deadline:
            break
        press(terminal, rng.choice("abcdefghij"), log)
    finished = terminal.wait_for(
        lambda r: r.get("answers", 0) > answers, sent_at, max(0.0, deadline - time.monotonic())
    )
    return log, finished, sent_at
