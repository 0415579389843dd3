"""The console as an operator meets it, against a real corral-core: start-up, dashboard, keys, themes, help."""

from __future__ import annotations

import contextlib

import docker.errors
import pytest

from console.app import CorralApp
from console.screens.base import ConnectionBanner
from console.screens.help import HelpScreen
from console.screens.key_forms import KeyCreateForm
from console.settings import ConsoleSettings
from tests.testbed import CorralDaemon, daemons_on, free_port, write_devices
from tests.testbed.waiting import wait_for_async

APP_WAIT_S = 15.0  # these apps start or reach a real corral-core first


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    """Hide the user's own console settings and themes."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def row_keys(table) -> list[str]:
    return table.row_keys


@pytest.mark.asyncio
async def test_the_console_starts_corral_core_when_none_answers(tmp_path, socket_path):
    app = CorralApp(socket_path, tmp_path / "data")

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)

        assert daemons_on(socket_path), "a detached corral-core should be running"
        assert (tmp_path / "data" / "corral-core.log").exists()
        await wait_for_async(lambda: app.live.status is not None, "the first snapshot", APP_WAIT_S, pause=pilot.pause)


@pytest.mark.asyncio
@pytest.mark.docker
@pytest.mark.llama_server
@pytest.mark.nvml_stub
async def test_the_dashboard_shows_a_provider_a_gpu_and_a_container(
    tmp_path, nvml_stub, llama_servers, tiny_model, llama_server_image, docker_client
):
    devices = write_devices(
        tmp_path / "gpus.json",
        [
            {
                "name": "NVIDIA L4",
                "uuid": "GPU-l4",
                "memory_total": 2**34,
                "memory_used": 2**30,
                "utilization_gpu": 12,
                "utilization_memory": 3,
                "temperature": 40,
            }
        ],
    )
    daemon = CorralDaemon(tmp_path / "corral", extra_env=nvml_stub.environment(devices)).start()
    (server,) = llama_servers(1)
    daemon.add_provider("local", server.base_url)
    deployed = daemon.admin_call(
        "POST",
        "/fleet/deployments",
        {
            "model_path": str(tiny_model),
            "name": "dash-tiny",
            "image": llama_server_image,
            "gpus": None,
            "port": free_port(),
            "ctx_size": 512,
        },
    )
    assert deployed.status_code == 201, deployed.text
    app = CorralApp(daemon.socket_path, daemon.data_dir, autostart=False)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            await wait_for_async(
                lambda: "local" in row_keys(screen.providers), "the provider row", APP_WAIT_S, pause=pilot.pause
            )
            await wait_for_async(
                lambda: "corral-dash-tiny" in row_keys(screen.fleet),
                "the deployment row",
                APP_WAIT_S,
                pause=pilot.pause,
            )
            await wait_for_async(
                lambda: row_keys(screen.gpus) == ["GPU-l4"], "the GPU row", APP_WAIT_S, pause=pilot.pause
            )
            assert "dash-tiny" in row_keys(screen.providers), "a deployment is also a provider"
    finally:
        daemon.stop()
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get("corral-dash-tiny").remove(force=True)


@pytest.mark.asyncio
async def test_a_key_created_in_the_form_and_revoked_from_the_dashboard_reaches_the_daemon(corral_daemon):
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)
        await pilot.press("n")
        await wait_for_async(
            lambda: isinstance(app.screen, KeyCreateForm), "the key form to open", APP_WAIT_S, pause=pilot.pause
        )
        form = app.screen
        form.query_one("#name").value = "billing-app"
        await pilot.press("ctrl+s")
        await wait_for_async(lambda: form.created is not None, "the key to be created", APP_WAIT_S, pause=pilot.pause)
        await pilot.press("enter")
        await wait_for_async(
            lambda: not isinstance(app.screen, KeyCreateForm), "the key form to close", APP_WAIT_S, pause=pilot.pause
        )
        (key,) = corral_daemon.admin_call("GET", "/keys").json()
        assert key["name"] == "billing-app"

        dashboard = app.screen
        await wait_for_async(
            lambda: key["id"] in row_keys(dashboard.keys), "the key row", APP_WAIT_S, pause=pilot.pause
        )
        dashboard.keys.focus()
        await pilot.press("r")
        await pilot.press("y")
        await wait_for_async(
            lambda: corral_daemon.admin_call("GET", "/keys").json()[0]["revoked"],
            "corral-core to revoke the key",
            APP_WAIT_S,
            pause=pilot.pause,
        )


@pytest.mark.asyncio
async def test_a_lost_daemon_shows_a_banner_and_the_console_reconnects(corral_daemon):
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)
        corral_daemon.stop()
        await wait_for_async(
            lambda: bool(app.screen.query(ConnectionBanner)), "the disconnected banner", APP_WAIT_S, pause=pilot.pause
        )
        assert "DISCONNECTED" in str(app.screen.query_one(ConnectionBanner).render())

        revived = CorralDaemon(corral_daemon.data_dir).start()
        try:
            await wait_for_async(
                lambda: app.connected and not app.screen.query(ConnectionBanner),
                "the banner to go on reconnecting",
                APP_WAIT_S,
                pause=pilot.pause,
            )
        finally:
            revived.stop()


@pytest.mark.asyncio
async def test_the_chosen_theme_is_remembered(corral_daemon, tmp_path):
    settings_file = tmp_path / "console.json"
    first = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False, settings_path=settings_file)
    async with first.run_test(size=(80, 24)) as pilot:
        first.theme = "high-contrast"
        await pilot.pause()

    assert ConsoleSettings.load(settings_file).theme == "high-contrast"
    second = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False, settings_path=settings_file)
    async with second.run_test(size=(80, 24)):
        assert second.theme == "high-contrast"


@pytest.mark.asyncio
async def test_a_broken_theme_file_is_skipped_with_a_notice(corral_daemon, private_config):
    themes = private_config / "corral" / "themes"
    themes.mkdir(parents=True)
    (themes / "broken.yaml").write_text("name: [unclosed")
    (themes / "mine.yaml").write_text("name: mine\nprimary: '#ff8800'\ndark: true\n")
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)

    async with app.run_test(size=(80, 24)):
        notices = [n.message for n in app._notifications]
        assert any("broken.yaml skipped" in message for message in notices)
        assert "mine" in app.available_themes, "users add their own themes in the config directory"
        assert app.theme == "corral-dark"


@pytest.mark.asyncio
async def test_help_lists_the_bindings_of_the_current_screen(corral_daemon):
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)

    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await wait_for_async(
            lambda: isinstance(app.screen, HelpScreen), "the help screen", APP_WAIT_S, pause=pilot.pause
        )
        table = app.screen.query_one("#help-table")
        ids = [table.get_row_at(row)[2] for row in range(table.row_count)]

        assert {"app.chat", "app.dashboard", "key.create", "provider.add", "fleet.deploy"} <= set(ids)
        await pilot.press("escape")
        await wait_for_async(
            lambda: not isinstance(app.screen, HelpScreen), "the help screen to close", APP_WAIT_S, pause=pilot.pause
        )


@pytest.mark.asyncio
async def test_escape_closes_a_form_without_saving(corral_daemon):
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)
        await pilot.press("n")
        await wait_for_async(
            lambda: isinstance(app.screen, KeyCreateForm), "the key form to open", APP_WAIT_S, pause=pilot.pause
        )
        await pilot.press("a", "b", "escape")
        await wait_for_async(
            lambda: not isinstance(app.screen, KeyCreateForm), "the key form to close", APP_WAIT_S, pause=pilot.pause
        )

        assert corral_daemon.admin_call("GET", "/keys").json() == []


@pytest.mark.asyncio
async def test_bindings_are_remapped_by_id_from_the_settings_file(corral_daemon, tmp_path):
    settings_file = tmp_path / "console.json"
    ConsoleSettings(keymap={"app.chat": "f5"}).save(settings_file)
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False, settings_path=settings_file)

    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        assert app.current_mode == "dashboard", "f3 no longer opens the chat"
        await pilot.press("f5")
        await wait_for_async(lambda: app.current_mode == "chat", "the chat mode", APP_WAIT_S, pause=pilot.pause)
