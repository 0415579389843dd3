"""The console under measurement: the real `CorralApp` on a terminal, reporting what each frame it draws shows.

`bench.console_cost` runs this in its own process on a pseudo-terminal and types into it. After every frame the
app writes one JSON line to `--records-fd`: the monotonic time (comparable across processes), the screen, the
focused widget and its cursor row or input length, the dashboard's row counts, and the last chat answer's stats.

    python -m bench.console_probe --socket PATH --data-dir DIR --records-fd FD
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import orjson
from textual import on  # noqa: TID251 (the ban is for gateway_core; this process is the console)
from textual.widgets import DataTable, Input  # noqa: TID251

from console.app import CorralApp
from console.screens.chat import ChatScreen
from console.screens.dashboard import DashboardScreen
from console.widgets.live_table import LiveTable

DASHBOARD_TABLES = ("gpus", "fleet", "providers", "keys", "requests")


class ProbedConsole(CorralApp):
    """CorralApp, unchanged but for one line written after each frame (Textual's public post-display hook)."""

    def __init__(self, socket_path: Path, data_dir: Path, records_fd: int) -> None:
        super().__init__(socket_path, data_dir, autostart=False)
        self.records_fd = records_fd
        self.last_answer: dict[str, Any] | None = None
        self.answers = 0

    def post_display_hook(self) -> None:
        os.write(self.records_fd, orjson.dumps(self.frame_record()) + b"\n")

    def frame_record(self) -> dict[str, Any]:
        screen = self.screen
        focused = screen.focused
        record: dict[str, Any] = {
            "t": time.monotonic(),
            "screen": type(screen).__name__,
            "focus": focused.id if focused is not None else None,
            "answers": self.answers,
        }
        if isinstance(focused, (DataTable, LiveTable)):
            record["cursor"] = focused.cursor_row
        elif isinstance(focused, Input):
            record["value"] = len(focused.value)
        if isinstance(screen, DashboardScreen):
            record["rows"] = {name: getattr(screen, name).row_count for name in DASHBOARD_TABLES}
        if self.last_answer is not None:
            record["answer"] = self.last_answer
        return record

    @on(ChatScreen.AnswerFinished)
    def count_answer(self, message: ChatScreen.AnswerFinished) -> None:
        stats = message.stats
        self.answers += 1
        self.last_answer = {
            "outcome": message.outcome,
            "tokens": None if stats is None else stats.completion_tokens,
            "tokens_per_s": None if stats is None else stats.tokens_per_s,
            "first_token_s": None if stats is None else stats.first_token_s,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.console_probe", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--records-fd", type=int, required=True)
    args = parser.parse_args(argv)
    ProbedConsole(args.socket, args.data_dir, args.records_fd).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
