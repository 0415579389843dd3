"""Where a streamed Markdown answer can be cut into parts that render exactly as the whole would.

Pure text logic, no widgets: the chat log uses it to seal a long answer's parts (console/widgets/chat_log.py).
"""

from __future__ import annotations

import re
from collections import deque

FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
PLAIN_PARAGRAPH = re.compile(r" {0,3}[^\W_]")  # a letter or digit first; four spaces would make it code
ORDERED_ITEM = re.compile(r"\d{1,9}[.)](\s|$)")
TABLE_OR_SETEXT_LINE = re.compile(r"[ \t]*[-=|:][-=|: \t]*")


class PartBreaks:
    """Where a streamed Markdown answer can be cut into parts that look exactly as the whole would.

    A cut goes before a plain paragraph that follows a blank line outside any fenced code block. Such a paragraph
    ends whatever block came before, and it has no top margin to collapse with one; a paragraph whose next line
    underlines it (a setext heading or a table) is not plain.
    """

    def __init__(self) -> None:
        self.found: deque[int] = deque()  # offsets into the answer, ascending
        self._tail = ""  # the unfinished last line
        self._offset = 0  # where _tail starts in the answer
        self._fence: str | None = None  # the open fence's marker
        self._after_blank = False
        self._paragraph: int | None = None  # a paragraph's first line: a break unless the next line underlines it

    def feed(self, text: str) -> None:
        lines = (self._tail + text).split("\n")
        self._tail = lines.pop()
        for line in lines:
            self._read_line(line)
            self._offset += len(line) + 1

    def _read_line(self, line: str) -> None:
        if self._paragraph is not None:
            if not TABLE_OR_SETEXT_LINE.fullmatch(line):
                self.found.append(self._paragraph)
            self._paragraph = None
        fence = FENCE.match(line)
        if self._fence is not None:
            closes = (
                fence is not None
                and fence[1][0] == self._fence[0]
                and len(fence[1]) >= len(self._fence)
                and not line[fence.end() :].strip()
            )
            self._fence = None if closes else self._fence
        elif fence is not None:
            self._fence = fence[1]
        elif self._after_blank and PLAIN_PARAGRAPH.match(line) and not ORDERED_ITEM.match(line.lstrip(" ")):
            self._paragraph = self._offset
        self._after_blank = self._fence is None and not line.strip()
