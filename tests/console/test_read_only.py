"""Read-only mode: `corral --read-only` or `"read_only": true` in console.json offers no key or palette command that
changes anything, says so, and refuses such an action however it is asked for."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re

import pytest
from textual.binding import Binding
from textual.dom import DOMNode

import console
from console.actions import ACTIONS
from console.app import CorralApp
from console.cli import main
from console.palette import CorralCommands
from console.read_only import MUTATING, READS
from console.screens.key_forms import KeyCreateForm
from console.widgets.live_table import LiveTable
from tests.testbed.waiting import wait_for_async

APP_WAIT_S = 15.0
MODES = ("dashboard", "chat", "history", "usage", "callbacks")


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def every_console_class() -> set[type[DOMNode]]:
    for module in pkgutil.walk_packages(console.__path__, "console."):
        importlib.import_module(module.name)
    found: set[type[DOMNode]] = set()
    todo = [DOMNode]
    while todo:
        for cls in todo.pop().__subclasses__():
            todo.append(cls)
            if cls.__module__.startswith("console."):
                found.add(cls)
    return found


def binding_ids(cls: type[DOMNode]) -> set[str]:
    return {binding.id for binding in vars(cls).get("BINDINGS", ()) if isinstance(binding, Binding) and binding.id}


def test_every_binding_and_action_in_the_console_is_named_either_mutating_or_read_only():
    """A new key must be classified in console/read_only.py, or read-only mode could miss it."""
    ids = set(ACTIONS)
    for cls in every_console_class():
        ids |= binding_ids(cls)

    assert ids, "the walk found the console's bindings"
    assert not MUTATING & READS
    assert ids - (MUTATING | READS) == set(), "classify these ids in console/read_only.py"
    assert {"key.create", "fleet.deploy", "provider.remove", "request.cancel", "callback.redeliver"} <= MUTATING


async def offered(app: CorralApp, pilot) -> set[str]:  # type: ignore[no-untyped-def]
    """Every binding id the current screen's footer, help and palette could offer, from every table on it."""
    screen = app.screen
    ids: set[str] = set()
    for target in [None, *screen.query(LiveTable)]:
        if target is not None:
            target.focus()
        else:
            screen.set_focus(None)
        await pilot.pause()
        ids |= {active.binding.id for active in screen.active_bindings.values() if active.binding.id}
        provider = CorralCommands(screen)
        async for hit in provider.discover():
            ids |= set(re.findall(r"\[([a-z_]+\.[a-z_.]+)\]", str(hit.help)))
    return ids


async def offered_everywhere(app: CorralApp, pilot) -> set[str]:  # type: ignore[no-untyped-def]
    ids: set[str] = set()
    for mode in MODES:
        await app.switch_mode(mode)
        await pilot.pause()
        ids |= await offered(app, pilot)
    await app.switch_mode("dashboard")
    await pilot.pause()
    return ids


def seed(daemon) -> None:  # type: ignore[no-untyped-def]
    daemon.add_provider("backup", "http://127.0.0.1:9", enabled=False)
    daemon.create_key("billing-app")


@pytest.mark.asyncio
async def test_a_read_only_console_offers_no_key_or_command_that_changes_anything(corral_daemon):
    seed(corral_daemon)
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for_async(
            lambda: screen.providers.row_count == 1 and screen.keys.row_count == 1,
            "the provider and key rows",
            APP_WAIT_S,
            pause=pilot.pause,
        )
        ids = await offered_everywhere(app, pilot)

        assert ids & MUTATING == set()
        assert {"app.chat", "fleet.logs", "table.filter", "table.sort"} <= ids, "looking around still works"
        assert app.sub_title.startswith("read-only")
        assert str(screen.query_one("#status-line").render()).startswith("read-only · corral-core")

        # The keys do nothing, and the actions refuse in words if reached another way.
        screen.keys.focus()
        await pilot.press("n", "d", "p", "r", "x", "e")
        await pilot.pause()
        assert app.screen is screen, "no form or confirmation opened"
        app.actions.act_on("keys", screen.keys.row_keys[0], "revoke")
        await pilot.pause()
        assert app.screen is screen
        assert any("read-only" in notification.message for notification in app._notifications)
        assert corral_daemon.admin_call("GET", "/keys").json()[0]["revoked"] is False


@pytest.mark.asyncio
async def test_the_same_console_without_read_only_offers_those_keys(corral_daemon):
    seed(corral_daemon)
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for_async(lambda: screen.keys.row_count == 1, "the key row", APP_WAIT_S, pause=pilot.pause)
        ids = await offered_everywhere(app, pilot)

        assert {"key.create", "key.revoke", "provider.remove", "fleet.deploy"} <= ids
        assert "read-only" not in app.sub_title


@pytest.mark.asyncio
async def test_read_only_true_in_console_json_opens_read_only(corral_daemon, private_config):
    private_config.mkdir(parents=True)
    (private_config / "corral").mkdir()
    (private_config / "corral" / "console.json").write_text(json.dumps({"read_only": True}))
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)
        await pilot.press("n")
        await pilot.pause()

        assert app.read_only
        assert not isinstance(app.screen, KeyCreateForm)
        title = str(app.screen.query_one(".first-run-title").render())
        assert "read-only" in title, "the first run says why its keys are off, not 'press n'"
        assert "key.create" not in {active.binding.id for active in app.screen.active_bindings.values()}


def test_read_only_with_a_subcommand_is_a_usage_error_that_changes_nothing(corral_daemon, capsys):
    code = main(["--socket", str(corral_daemon.socket_path), "--read-only", "keys", "create", "ci"])

    assert code == 2
    assert "--read-only is for the console" in capsys.readouterr().err
    assert corral_daemon.admin_call("GET", "/keys").json() == []
