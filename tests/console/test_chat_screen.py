"""The chat pane streams answers from a real llama-server through a real corral-core, stops them, and keeps turns."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, Select

from console.live_state import LiveState
from console.screens.chat import STOPPED_MARK, ChatScreen
from console.widgets.chat_log import ChatEntry, ChatLog, ChatNote
from gateway_core.client import CorralClient
from tests.testbed.waiting import wait_for_async

pytestmark = [pytest.mark.llama_server, pytest.mark.asyncio]

# Context shift and ignore_eos let the tiny random model generate for as long as a test needs.
LONG_RUNNING = ("--context-shift",)
PARAMS = {"ignore_eos": True}


class ChatHarness(App[None]):
    """The smallest ConsoleHost: an admin client, LiveState from the first event, and the chat screen."""

    def __init__(self, socket_path: Any) -> None:
        super().__init__()
        self.client = CorralClient(socket_path)
        self.live = LiveState()
        self.finished: list[ChatScreen.AnswerFinished] = []

    async def on_mount(self) -> None:
        async with contextlib.aclosing(self.client.events()) as events:
            kind, data = await anext(events)
        self.live.apply(kind, data)
        await self.push_screen(ChatScreen(params=PARAMS))

    def on_chat_screen_answer_finished(self, message: ChatScreen.AnswerFinished) -> None:
        self.finished.append(message)

    async def on_unmount(self) -> None:
        await self.client.aclose()


async def open_chat(pilot: Pilot, max_tokens: int) -> ChatScreen:
    await wait_for_async(lambda: isinstance(pilot.app.screen, ChatScreen), "the chat screen", pause=pilot.pause)
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen)
    assert screen.query_one("#chat-model", Select).value == "tiny"
    screen.query_one("#chat-max-tokens", Input).value = str(max_tokens)
    return screen


async def send(pilot: Pilot, screen: ChatScreen, text: str) -> None:
    prompt = screen.query_one("#chat-prompt", Input)
    prompt.focus()
    await pilot.press(*text, "enter")
    await wait_for_async(lambda: prompt.value == "", "the prompt to be sent", pause=pilot.pause)


async def ask(pilot: Pilot, screen: ChatScreen, text: str) -> ChatScreen.AnswerFinished:
    """Send `text` and wait for its answer to end."""
    app = pilot.app
    assert isinstance(app, ChatHarness)
    before = len(app.finished)
    await send(pilot, screen, text)
    await wait_for_async(lambda: len(app.finished) > before, f"the answer to {text!r}", pause=pilot.pause)
    return app.finished[-1]


def entries(screen: ChatScreen) -> list[ChatEntry]:
    return screen.query_one(ChatLog).entries


async def slots_busy(server: Any) -> int:
    async with httpx.AsyncClient() as http:
        slots = (await http.get(server.base_url + "/slots")).json()
    return sum(1 for slot in slots if slot["is_processing"])


@pytest.fixture
def served(corral_daemon, llama_servers):
    (server,) = llama_servers(1, extra_args=LONG_RUNNING)
    corral_daemon.add_provider("local", server.base_url)
    return corral_daemon, server


async def test_a_prompt_streams_an_answer_with_its_provider_and_token_stats(served):
    daemon, _ = served
    app = ChatHarness(daemon.socket_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot, max_tokens=40)

        finished = await ask(pilot, screen, "hello")

        user, answer = entries(screen)
        assert (user.role, user.text) == ("user", "hello")
        assert answer.role == "assistant"
        assert answer.text.strip()
        stats = str(answer.stats.render())
        assert "via local" in stats
        assert "40 tokens" in stats
        assert "tok/s" in stats
        assert "first token" in stats
        assert finished.outcome == "done"
        assert finished.stats == screen.last_stats
        assert finished.stats.completion_tokens == 40
        assert finished.stats.counted_by_server


async def test_esc_stops_a_long_answer_and_frees_the_llama_server_slot(served):
    daemon, server = served
    app = ChatHarness(daemon.socket_path)
    async with app.run_test(size=(120, 40)) as pilot, CorralClient(daemon.socket_path) as admin:
        screen = await open_chat(pilot, max_tokens=100_000)
        await send(pilot, screen, "go on forever")
        await wait_for_async(lambda: len(entries(screen)) == 2, "the answer to begin", pause=pilot.pause)
        answer = entries(screen)[-1]
        await wait_for_async(lambda: len(answer.body.source) > 50, "tokens to show while streaming", pause=pilot.pause)
        assert await slots_busy(server) == 1

        await pilot.press("escape")
        await wait_for_async(lambda: not screen.generating, "the answer to stop", pause=pilot.pause)

        assert answer.text.endswith(STOPPED_MARK)
        assert STOPPED_MARK in str(answer.stats.render())
        await wait_for_async(lambda: _idle(server), "llama-server to free its slot", pause=pilot.pause)
        await wait_for_async(lambda: _no_requests(admin), "corral-core to end the request", pause=pilot.pause)
        assert screen.turns[-1]["role"] == "assistant"  # the partial answer stays in the conversation


async def _idle(server: Any) -> bool:
    return await slots_busy(server) == 0


async def _busy(server: Any) -> bool:
    return await slots_busy(server) == 1


async def _no_requests(admin: CorralClient) -> bool:
    return await admin.requests() == []


async def test_later_turns_send_the_whole_conversation_and_copy_takes_the_last_answer(served):
    daemon, _ = served
    app = ChatHarness(daemon.socket_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot, max_tokens=8)
        screen.query_one("#chat-system", Input).value = "be brief"
        first = await ask(pilot, screen, "first")
        first_answer = screen.last_answer

        second = await ask(pilot, screen, "second")

        assert screen.last_sent == [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": first_answer},
            {"role": "user", "content": "second"},
        ]
        # The server saw the earlier turns: the second prompt is longer by at least the first answer.
        assert first.stats is not None
        assert second.stats is not None
        assert second.stats.prompt_tokens > first.stats.prompt_tokens + first.stats.completion_tokens

        await pilot.press("ctrl+y")
        assert app.clipboard == screen.last_answer


async def test_clear_stops_any_answer_and_starts_a_new_conversation(served):
    daemon, server = served
    app = ChatHarness(daemon.socket_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot, max_tokens=8)
        await ask(pilot, screen, "one")
        screen.query_one("#chat-max-tokens", Input).value = "100000"
        await send(pilot, screen, "two")
        await wait_for_async(lambda: _busy(server), "the second answer to be generating", pause=pilot.pause)

        await pilot.press("ctrl+l")
        await wait_for_async(
            lambda: not screen.query_one(ChatLog).children, "the conversation to empty", pause=pilot.pause
        )

        assert not screen.generating
        assert screen.turns == []
        assert screen.last_answer == ""
        await wait_for_async(lambda: _idle(server), "llama-server to free its slot", pause=pilot.pause)


async def test_a_failed_request_shows_an_error_line_not_a_traceback(served):
    daemon, server = served
    app = ChatHarness(daemon.socket_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot, max_tokens=8)
        server.stop()

        finished = await ask(pilot, screen, "anyone there?")

        assert (finished.outcome, finished.stats) == ("error", None)
        (note,) = screen.query(ChatNote)
        assert str(note.render()).startswith("Error: ")
        assert note.has_class("-error")
        assert screen.turns == []  # the failed turn is not sent again with the next prompt


async def test_invalid_sampling_is_flagged_as_you_type_and_refused_on_send(served):
    daemon, _ = served
    app = ChatHarness(daemon.socket_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_chat(pilot, max_tokens=8)
        temperature = screen.query_one("#chat-temperature", Input)
        temperature.focus()
        await pilot.press("end", "9")  # 0.79 is fine; make it 9.79
        await pilot.press("home", "9")
        await pilot.pause()

        assert not temperature.is_valid
        assert "between 0 and 2" in str(screen.query_one("#chat-hint").render())
        screen.query_one("#chat-prompt", Input).focus()
        await pilot.press(*"hi", "enter")
        await pilot.pause()
        assert not screen.generating
        assert screen.query_one("#chat-prompt", Input).value == "hi"  # kept, so it can be sent once fixed
