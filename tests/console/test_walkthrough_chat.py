"""The chat's model picker follows the providers even while another screen shows (found in the walkthrough)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.widgets import Select, Static

from console.app import CorralApp
from console.screens.chat import ChatScreen
from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for_async

pytestmark = [pytest.mark.llama_server, pytest.mark.asyncio]

APP_WAIT_S = 15.0  # the app reaches a real corral-core, and the provider's first probe lists its model


async def test_a_provider_added_after_the_chat_was_built_appears_in_its_picker_without_a_restart(
    corral_daemon: CorralDaemon, llama_servers: Callable[..., list[Any]]
) -> None:
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)
        await pilot.press("f3")
        await wait_for_async(lambda: isinstance(app.screen, ChatScreen), "the chat", APP_WAIT_S, pause=pilot.pause)
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        note = chat.query_one("#chat-no-model", Static)
        assert note.has_class("-shown"), "with no provider, the chat says why the picker is empty"
        await pilot.press("f2")  # the chat is built but no longer shown: live updates do not reach it
        await pilot.pause()

        (server,) = llama_servers(1)
        corral_daemon.add_provider("late", server.base_url)
        await wait_for_async(
            lambda: "tiny" in app.live.providers.get("late", {}).get("models", []),
            "the provider to list its model",
            APP_WAIT_S,
            pause=pilot.pause,
        )
        await pilot.press("f3")
        await pilot.pause()

        assert app.screen is chat
        assert chat.query_one("#chat-model", Select).value == "tiny"
        assert not note.has_class("-shown")
