"""The console's words (found in the walkthrough): the palette describes what an entry does and offers Theme before
anything is typed, help names the real console.json and Textual's own keys, toasts read one way, a cancel names
what was cancelled, and a revoked key is offered for deletion, not revoked again."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, Static

from console.app import CorralApp
from console.screens.confirm import ConfirmScreen
from console.screens.dashboard import DashboardScreen
from console.screens.help import HelpScreen
from tests.testbed import CorralDaemon
from tests.testbed.ports import free_port
from tests.testbed.waiting import wait_for, wait_for_async

APP_WAIT_S = 15.0
DEPLOY_WAIT_S = 60.0  # a container starts and llama-server loads the tiny model


@pytest.fixture(autouse=True)
def private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The console's settings somewhere of the test's own, as XDG_CONFIG_HOME says."""
    config = tmp_path / "elsewhere"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


def notices(app: CorralApp) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


async def connected_app(pilot: Any, app: CorralApp) -> DashboardScreen:
    await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


# -- the palette and help ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_palette_describes_entries_in_words_and_offers_theme_before_typing(
    corral_daemon: CorralDaemon,
) -> None:
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await connected_app(pilot, app)
        await pilot.press("ctrl+p")
        await wait_for_async(lambda: isinstance(app.screen, CommandPalette), "the palette", pause=pilot.pause)
        commands = app.screen.query_one(CommandList)
        await wait_for_async(lambda: commands.option_count > 5, "the palette's entries", pause=pilot.pause)
        prompts = [str(commands.get_option_at_index(i).prompt) for i in range(commands.option_count)]

        # Before typing: among what the palette discovers (its providers' lists come in whichever order they finish).
        assert any(prompt.startswith("Theme") for prompt in prompts), prompts
        assert sum(prompt.startswith("Theme") for prompt in prompts) == 1, "one Theme entry, not Textual's as well"
        add = next(prompt for prompt in prompts if prompt.startswith("Add a provider endpoint"))
        assert "key: p" in add
        assert not [prompt for prompt in prompts if "[provider." in prompt or "[app." in prompt], "no binding ids"


@pytest.mark.asyncio
async def test_help_names_the_console_json_xdg_config_home_points_at_and_lists_tab_and_the_palette(
    corral_daemon: CorralDaemon, private_config: Path
) -> None:
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await connected_app(pilot, app)
        await pilot.press("f1")
        await wait_for_async(lambda: isinstance(app.screen, HelpScreen), "the help", pause=pilot.pause)

        title = str(app.screen.query_one("#help-title", Static).content)
        assert str(private_config / "corral" / "console.json") in title
        assert "~/.config" not in title
        table: DataTable[str] = app.screen.query_one("#help-table", DataTable)
        keys = [str(table.get_row_at(row)[0]) for row in range(table.row_count)]
        assert "tab / shift+tab" in keys
        assert "ctrl+p" in keys


# -- toasts --------------------------------------------------------------------------------------------------


@pytest.fixture
def deployment(
    corral_daemon: CorralDaemon, tiny_model: Path, llama_server_image: str, docker_client: docker.DockerClient
) -> Iterator[str]:
    name = "words-tiny"
    deployed = corral_daemon.admin_call(
        "POST",
        "/fleet/deployments",
        {
            "model_path": str(tiny_model),
            "name": name,
            "image": llama_server_image,
            "gpus": None,
            "port": free_port(),
            "ctx_size": 512,
        },
    )
    assert deployed.status_code == 201, deployed.text
    try:
        yield name
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(f"corral-{name}").remove(force=True)


@pytest.mark.asyncio
@pytest.mark.docker
@pytest.mark.llama_server
async def test_stop_start_and_restart_toasts_read_the_same_way(corral_daemon: CorralDaemon, deployment: str) -> None:
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await connected_app(pilot, app)

        app.actions.control_deployment(deployment, "stop")
        await wait_for_async(lambda: isinstance(app.screen, ConfirmScreen), "the confirmation", pause=pilot.pause)
        await pilot.press("y")
        for action, said in (("stop", "stopped"), ("start", "started"), ("restart", "restarted")):
            if action != "stop":
                app.actions.control_deployment(deployment, action)
            await wait_for_async(
                lambda said=said: f"{said} deployment {deployment}" in notices(app),
                f"the {action} toast",
                DEPLOY_WAIT_S,
                pause=pilot.pause,
            )
        assert not [n for n in app._notifications if n.severity == "error"], notices(app)


@pytest.mark.asyncio
@pytest.mark.llama_server
async def test_a_cancelled_request_is_named_by_its_model_and_key(
    corral_daemon: CorralDaemon, llama_servers: Callable[..., list[Any]]
) -> None:
    (server,) = llama_servers(1, extra_args=("--context-shift",))
    corral_daemon.add_provider("local", server.base_url)
    key = corral_daemon.create_key("webapp")
    wait_for(lambda: corral_daemon.admin_call("GET", "/status").json()["models"].get("tiny"), "the model", APP_WAIT_S)
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot, httpx.AsyncClient(timeout=60) as http:
        await connected_app(pilot, app)
        body = {"model": "tiny", "messages": [{"role": "user", "content": "go"}], "stream": True, "ignore_eos": True}
        async with http.stream(
            "POST",
            corral_daemon.base_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json=body,
        ):
            await wait_for_async(lambda: bool(app.live.requests), "the live request", APP_WAIT_S, pause=pilot.pause)
            (request_id,) = app.live.requests
            app.actions.cancel_live_request(request_id)
            await wait_for_async(
                lambda: "cancelled the request for tiny from key webapp" in notices(app),
                "the cancel's toast",
                APP_WAIT_S,
                pause=pilot.pause,
            )
        assert not any(request_id in notice for notice in notices(app)), "named by what it is, not its id"


# -- a revoked key -------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_revoked_key_is_offered_for_deletion_not_revoked_again(corral_daemon: CorralDaemon) -> None:
    corral_daemon.create_key("old-ci")
    (key,) = corral_daemon.admin_call("GET", "/keys").json()
    assert corral_daemon.admin_call("POST", f"/keys/{key['id']}/revoke").status_code == 200
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await connected_app(pilot, app)
        await wait_for_async(
            lambda: app.live.keys.get(key["id"], {}).get("revoked"), "the revoked key", APP_WAIT_S, pause=pilot.pause
        )
        await pilot.pause()
        screen.keys.focus()
        await pilot.press("r")
        await wait_for_async(lambda: isinstance(app.screen, ConfirmScreen), "the dialog", pause=pilot.pause)

        question = str(app.screen.query_one("#question", Static).content)
        assert question == f"Key old-ci ({key['id']}) is already revoked. Delete it?"
        assert "Delete (y)" in str(app.screen.query_one("#yes").label)
        await pilot.press("y")
        await wait_for_async(
            lambda: corral_daemon.admin_call("GET", "/keys").json() == [], "the key to be deleted", pause=pilot.pause
        )
        await wait_for_async(lambda: "deleted key old-ci" in notices(app), "the toast", pause=pilot.pause)
