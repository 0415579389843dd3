"""A long answer streams into several Markdown parts that together show exactly the text that came in."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from console.markdown_parts import PartBreaks
from console.widgets.chat_log import CHAPTER_PARTS, PART_CHARS, ChatLog
from tests.testbed.waiting import wait_for_async

CHAT_CSS = Path(__file__).resolve().parents[2] / "console" / "styles" / "chat.tcss"
PARAGRAPH = " the quick brown fox jumps over a lazy dog" * 4 + ".\n\n"
CODE = "```python\nprint(1)\n\nvalue = 2\n\nprint(value)\n```\n\n"


class ChatLogHarness(App[None]):
    CSS_PATH = CHAT_CSS

    def compose(self) -> ComposeResult:
        yield ChatLog(id="chat-log")


def long_answer(paragraphs: int) -> str:
    # Code blocks with blank lines inside them, so a cut in the wrong place would show.
    return "".join(CODE if index % 7 == 3 else PARAGRAPH for index in range(paragraphs))


def breaks(text: str) -> list[int]:
    found = PartBreaks()
    found.feed(text)
    return list(found.found)


def test_breaks_go_before_plain_paragraphs_after_a_blank_line():
    text = "One.\n\nTwo.\n\n## Head\n\n- item\n\n   Three.\n\nFour\n===\n\n1. first\n\nFive.\nmore\n"
    assert [text[offset : offset + 5] for offset in breaks(text)] == ["Two.\n", "   Th", "Five."]


def test_no_break_falls_inside_a_fenced_code_block():
    text = "Intro.\n\n~~~\nfenced\n\ninside\n~~~\n\nAfter.\n\n"
    assert [text[offset : offset + 6] for offset in breaks(text)] == ["After."]


@pytest.mark.asyncio
async def test_a_long_streamed_answer_is_split_into_parts_that_show_exactly_its_text():
    answer_text = long_answer(300)
    app = ChatLogHarness()
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.query_one(ChatLog)
        answer = await log.begin_answer()
        for index, start in enumerate(range(0, len(answer_text), 997)):  # fragments cut anywhere, even in a line
            answer.add(answer_text[start : start + 997])
            if index % 4 == 3:  # about one flush's worth: let it show before more arrive, as a stream would
                await wait_for_async(
                    lambda: answer.entry.source == answer.text, "the answer to show what came", pause=pilot.pause
                )
        await answer.finish("", "stats")
        await pilot.pause()

        entry = answer.entry
        assert answer.text == entry.text == answer_text
        assert entry.source == answer_text
        sources = [part.source for part in entry.parts]
        assert len(sources) >= len(answer_text) // (2 * PART_CHARS)
        assert all(len(source) >= PART_CHARS for source in sources[:-1])
        assert all(source.count("```") % 2 == 0 for source in sources)  # every fence opens and closes in one part
        assert all(part.sealed for part in entry.body_parts)


class Settled:
    """True once the log's height has stayed the same for `frames` checks: Markdown lays its blocks out over
    several frames after an update, and each can change the height."""

    def __init__(self, log: ChatLog, frames: int = 3) -> None:
        self._log = log
        self._frames = frames
        self._heights: list[int] = []

    def __call__(self) -> bool:
        self._heights.append(self._log.virtual_size.height)
        return len(self._heights) >= self._frames and len(set(self._heights[-self._frames :])) == 1


@pytest.mark.asyncio
async def test_chapters_far_from_the_view_fold_as_one_and_unfold_when_scrolled_to():
    app = ChatLogHarness()
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.query_one(ChatLog)
        answer = await log.begin_answer()
        answer.add(long_answer(300))
        await answer.finish("", "stats")
        log.scroll_end(animate=False)
        settled = Settled(log)
        first, *_, last = answer.entry.chapters
        assert len(answer.entry.chapters) >= 2
        assert all(len(chapter.parts) <= CHAPTER_PARTS for chapter in answer.entry.chapters)
        # Folding follows the frames that lay the scrolled view out: wait for the state it settles in.
        await wait_for_async(
            lambda: first.folded and not last.folded and not last.parts[-1].folded and settled(),
            "the far chapter to fold and the one in view to stay open",
            pause=pilot.pause,
        )
        assert not any(part.display for part in first.parts), "a folded chapter's parts leave the layout"
        height = log.virtual_size.height

        log.scroll_home(animate=False)
        await wait_for_async(
            lambda: not first.folded and not first.parts[0].folded and last.folded,
            "the chapter scrolled to to unfold and the far one to fold",
            pause=pilot.pause,
        )

        assert not first.folded
        assert not first.parts[0].folded
        assert last.folded
        assert log.virtual_size.height == height  # folded chapters keep their place
