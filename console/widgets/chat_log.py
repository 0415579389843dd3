"""The chat conversation as widgets: one entry per message, answers streamed in with buffered writes, and the
stats line shown under each answer.

A long answer is shown in several Markdown parts: every flush lays out each block of the part it writes to, so
a part is sealed after PART_CHARS and the answer goes on in a fresh one (bench/README.md, "Console cost").

Widgets show; the chat screen decides what to send and what an answer means.
"""

from __future__ import annotations

import asyncio

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Markdown, Static

from console.markdown_parts import PartBreaks

# Writing every token to the Markdown stream makes the keyboard lag; 50 ms batches still look live.
FLUSH_INTERVAL_S = 0.05
NEAR_BOTTOM_LINES = 3
# A flush then lays out some 20 paragraphs, not the thousands of a 50,000-token answer.
PART_CHARS = 4000
CHAPTER_PARTS = 8
FLUSH_CHARS = 4000
ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}


class Foldable(Vertical):
    """A piece of an answer that, once sealed, can fold away while it is out of view.

    Textual lays out every displayed widget on the screen after each change, and each Markdown block is a widget.
    Folded, what the piece shows leaves the layout and a fixed height keeps its place, so a flush's cost grows
    little with the answer's length (bench/README.md, "Console cost").
    """

    def __init__(self, *children: Widget, classes: str) -> None:
        # The zero-height pin makes Textual measure the piece by its width alone (not by the entry's growing
        # height), so a sealed piece keeps its cached layout while the answer grows below it.
        self.pin = Static(classes="chat-part-pin")
        super().__init__(*children, self.pin, classes=classes)
        self.folded = False

    def shown(self) -> list[Widget]:
        """What folding hides."""
        raise NotImplementedError

    def fold(self) -> None:
        """Only for a sealed piece: what it shows must not change while folded."""
        if not self.folded and self.size.height:
            self.styles.height = self.size.height
            for widget in self.shown():
                widget.display = False
            self.folded = True

    def unfold(self) -> None:
        if self.folded:
            for widget in self.shown():
                widget.display = True
            self.styles.height = "auto"
            self.folded = False


class BodyPart(Foldable):
    """One Markdown part of a message's body."""

    def __init__(self, markdown: Markdown) -> None:
        super().__init__(markdown, classes="chat-part")
        self.markdown = markdown
        self.sealed = False  # nothing more will be written to it

    def shown(self) -> list[Widget]:
        return [self.markdown]


class Chapter(Foldable):
    """Up to CHAPTER_PARTS consecutive parts, folded as one once all are sealed: a long answer's layout then
    visits a widget per chapter, not two per part (0.19 ms each, per frame, measured)."""

    def __init__(self, part: BodyPart) -> None:
        super().__init__(part, classes="chat-chapter")

    @property
    def parts(self) -> list[BodyPart]:
        return list(self.query_children(BodyPart))

    @property
    def sealed(self) -> bool:
        return all(part.sealed for part in self.parts)

    def shown(self) -> list[Widget]:
        return list(self.parts)


class ChatEntry(Vertical):
    """One message: who said it, the Markdown body (in parts and chapters, when long), and (for answers) a stats
    line."""

    def __init__(self, role: str, text: str = "", *, title: str | None = None) -> None:
        super().__init__(classes=f"chat-entry chat-{role}")
        self.role = role
        self.text = text
        self._title = title or ROLE_TITLES.get(role, role)

    def compose(self) -> ComposeResult:
        yield Static(self._title, classes="chat-role", markup=False)
        yield Chapter(BodyPart(Markdown(self.text, classes="chat-body")))
        yield Static("", classes="chat-stats", markup=False)

    @property
    def chapters(self) -> list[Chapter]:
        return list(self.query_children(Chapter))

    @property
    def body_parts(self) -> list[BodyPart]:
        return [part for chapter in self.chapters for part in chapter.parts]

    @property
    def parts(self) -> list[Markdown]:
        """The Markdown widgets that show the body, in order; only a long answer has more than one."""
        return [part.markdown for part in self.body_parts]

    @property
    def body(self) -> Markdown:
        """The last part: the one an answer is being written into."""
        return self.parts[-1]

    @property
    def source(self) -> str:
        """The Markdown shown so far, across all parts."""
        return "".join(part.source for part in self.parts)

    async def add_part(self) -> Markdown:
        """Seal the last part and start a new one (in a new chapter when the last is full)."""
        chapter = self.chapters[-1]
        parts = chapter.parts
        parts[-1].sealed = True
        markdown = Markdown(classes="chat-body")
        if len(parts) < CHAPTER_PARTS:
            await chapter.mount(BodyPart(markdown), before=chapter.pin)
        else:
            await self.mount(Chapter(BodyPart(markdown)), before=self.stats)
        return markdown

    @property
    def stats(self) -> Static:
        return self.query_children(".chat-stats").only_one(Static)

    def show_stats(self, line: str) -> None:
        self.stats.update(line)
        self.stats.add_class("-shown")


class ChatNote(Static):
    """A line in the conversation that is not a message: an error, or a note about the conversation."""

    def __init__(self, text: str, *, error: bool = False) -> None:
        super().__init__(text, markup=False, classes="chat-note -error" if error else "chat-note")


class AnswerStream:
    """An answer being written: tokens are buffered and appended to the Markdown on a short timer.

    It appends itself rather than through `Markdown.get_stream()`: a part can only be sealed once it has taken all
    its text, and a MarkdownStream stopped while it appends re-parses that text into a second copy.
    """

    def __init__(self, log: ChatLog, entry: ChatEntry) -> None:
        self.entry = entry
        self._log = log
        self._fragments: list[str] = []
        self._pending: list[str] = []
        self._breaks = PartBreaks()
        self._written = 0  # characters of the answer appended so far
        self._part = entry.body
        self._part_start = 0  # where the part being written begins in the answer
        # The timer may cancel a flush mid-append (when it stops); the append goes on, and finish() waits for it.
        self._appending: asyncio.Task[None] | None = None
        self._timer: Timer = log.set_interval(FLUSH_INTERVAL_S, self._flush, name="chat-answer-flush")
        self.finished = False

    @property
    def text(self) -> str:
        return "".join(self._fragments)

    def add(self, fragment: str) -> None:
        """Buffer a fragment; it shows within FLUSH_INTERVAL_S, or as soon as the previous flush ends."""
        self._fragments.append(fragment)
        self._pending.append(fragment)

    async def _flush(self) -> None:
        if self.finished or not self._pending:
            return
        self._appending = asyncio.ensure_future(self._append_following(self._take_pending()))
        await asyncio.shield(self._appending)

    def _take_pending(self) -> str:
        """Up to about FLUSH_CHARS of the buffer: after a slow flush it catches up over the next ticks, not in one
        long stall of the keyboard."""
        fragment = "".join(self._pending)
        self._pending.clear()
        cut = fragment.find("\n", FLUSH_CHARS) + 1 if len(fragment) > FLUSH_CHARS else 0
        if cut:
            fragment, rest = fragment[:cut], fragment[cut:]
            self._pending.append(rest)
        return fragment

    async def _append_following(self, fragment: str) -> None:
        follow = self._log.is_near_bottom()
        await self._append(fragment)
        if follow:
            self._log.scroll_end(animate=False)
        self._log.schedule_folds()

    async def _append(self, fragment: str) -> None:
        """Append to the part being written; past PART_CHARS, seal it at the next break and go on in a new part."""
        self._breaks.feed(fragment)
        start, end = self._written, self._written + len(fragment)
        while (cut := self._next_cut(start, end)) is not None:
            await self._part.append(fragment[: cut - start])
            fragment = fragment[cut - start :]
            self._part, self._part_start, start = await self.entry.add_part(), cut, cut
        if fragment:
            await self._part.append(fragment)
        self._written = end

    def _next_cut(self, start: int, end: int) -> int | None:
        """The first break in the text from `start` to `end` once the part is long enough; None if none."""
        found = self._breaks.found
        earliest = max(start, self._part_start + PART_CHARS)
        while found and found[0] < min(earliest, end):
            found.popleft()  # too early, and once this text is written, too late
        return found.popleft() if found and found[0] < end else None

    async def finish(self, suffix: str = "", stats: str | None = None) -> str:
        """Stop streaming and append what is left (plus `suffix`); returns the answer without it."""
        if self.finished:
            return self.text
        self.finished = True
        self._timer.stop()
        if self._appending is not None:
            await self._appending
        # Only the rest goes in, a slice per frame: a full update() re-parses and re-mounts every block of the
        # answer, which for a long one stalls the keyboard for as long (bench/README.md, "Console cost").
        self._pending.append(suffix)
        while self._pending:
            await self._append_following(self._take_pending())
            if self._pending:
                await asyncio.sleep(FLUSH_INTERVAL_S / 2)
        follow = self._log.is_near_bottom()
        self.entry.body_parts[-1].sealed = True
        self._log.schedule_folds()
        self.entry.text = self.text + suffix
        if stats:
            self.entry.show_stats(stats)
        if follow:
            self._log.scroll_end(animate=False)
        return self.text


class ChatLog(VerticalScroll):
    """The scrolling conversation. It follows new output only while the reader is near the bottom.

    Sealed chapters and parts more than a screen away from the view are folded (see Foldable).
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._folds_due = False
        self._folded_at_width = 0

    def on_mount(self) -> None:
        self.watch(self, "scroll_y", self.schedule_folds, init=False)

    def on_resize(self) -> None:
        if self.size.width != self._folded_at_width:  # folded heights were measured at the old width
            self._folded_at_width = self.size.width
            for entry in self.entries:
                for chapter in entry.chapters:
                    chapter.unfold()
                    for part in chapter.parts:
                        part.unfold()
            self.schedule_folds()

    def schedule_folds(self) -> None:
        """Fold and unfold sealed chapters and parts once the next frame has laid them out."""
        if not self._folds_due:
            self._folds_due = True
            self.call_after_refresh(self._update_folds)

    def _update_folds(self) -> None:
        self._folds_due = False
        view = self.content_region
        near = view.grow((view.height, 0, view.height, 0))
        unfolded = False
        for entry in self.entries:
            for chapter in entry.chapters:
                region = chapter.region
                if not region:
                    continue
                if chapter.sealed and not region.overlaps(near):
                    chapter.fold()
                    continue
                if chapter.folded:
                    chapter.unfold()
                    unfolded = True  # its parts have no place until the next frame: fold them then
                    continue
                for part in chapter.parts:
                    region = part.region
                    if not (part.sealed and region):
                        continue
                    if region.overlaps(near):
                        part.unfold()
                    else:
                        part.fold()
        if unfolded:
            self.schedule_folds()

    def is_near_bottom(self) -> bool:
        return self.max_scroll_y - self.scroll_y <= NEAR_BOTTOM_LINES

    async def add_message(self, role: str, text: str) -> ChatEntry:
        entry = ChatEntry(role, text)
        await self._mount_following(entry)
        return entry

    async def add_note(self, text: str, *, error: bool = False) -> ChatNote:
        note = ChatNote(text, error=error)
        await self._mount_following(note)
        return note

    async def begin_answer(self, title: str = "Assistant") -> AnswerStream:
        entry = ChatEntry("assistant", title=title)
        await self._mount_following(entry)
        return AnswerStream(self, entry)

    async def clear_conversation(self) -> None:
        await self.remove_children()

    @property
    def entries(self) -> list[ChatEntry]:
        return list(self.query_children(ChatEntry))

    async def _mount_following(self, widget: ChatEntry | ChatNote) -> None:
        follow = self.is_near_bottom()
        await self.mount(widget)
        if follow:
            self.scroll_end(animate=False)
