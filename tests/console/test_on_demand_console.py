"""Models on demand and router mode on the dashboard, from the event stream alone: each deployment's load state,
policy, use and memory, a router's models under it, load decisions as toasts, and the keys that act on them.

The harness feeds LiveState as the daemon's events would (no daemon, nothing polls); the keys' calls to a real
corral-core are in test_on_demand_console_daemon.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.actions import ConsoleActions
from console.contexts import Context, default_context
from console.live_state import DECISIONS_KEPT, LiveState
from console.palette import CorralCommands
from console.screens.confirm import ConfirmScreen
from console.screens.dashboard import DashboardScreen
from console.screens.deployment_detail import DeploymentDetailScreen
from console.theme_files import builtin_themes_dir
from console.themes import load_theme
from console.widgets.key_hints import KeyHints
from console.widgets.panels import router_model_key
from gateway_core.client import CorralClient
from tests.console.dashboard_data import (
    FAILED_LOG,
    NOW,
    DashboardHarness,
    cell,
    decision,
    on_demand_box,
    on_demand_view,
    router_provider,
    row_keys,
    settle,
)
from tests.testbed.waiting import wait_for_async


class OnDemandHarness(DashboardHarness):
    """The dashboard with the console's own actions behind its keys; the client points at a socket nobody serves,
    so a call that reached it would fail loudly (the calls themselves are tested against a real corral-core)."""

    def __init__(self, socket_path: Path, now: Any = lambda: NOW) -> None:
        super().__init__(on_demand_box(), now=now)
        self.client = CorralClient(socket_path)  # type: ignore[assignment]
        self.actions = ConsoleActions(self, self.client, self.live)  # type: ignore[arg-type]
        self.read_only = False  # CorralApp's: every key and command is offered
        self.context = default_context(socket_path, socket_path.parent)

    def contexts(self) -> dict[str, Context]:
        """CorralApp's: only the corral-core it follows, so the palette offers no context to switch to."""
        return {self.context.name: self.context}

    def on_dashboard_screen_item_action(self, message: DashboardScreen.ItemAction) -> None:
        self.actions.act_on(message.section, message.key, message.action)

    def action_help(self) -> None:
        """CorralApp's; the palette offers it."""


async def select(pilot: Pilot[None], table: Any, key: str) -> None:
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()


def footer(app: DashboardHarness) -> str:
    return app.dashboard.query_one(KeyHints).plain


@pytest.mark.asyncio
async def test_the_containers_panel_shows_each_deployments_load_state_policy_last_use_load_time_and_memory():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.fleet

        assert [cell(table, f"corral-{name}", "state") for name in ("chat-7b", "coder-14b", "embed", "vision")] == [
            "warm",
            "loading",
            "cold",
            "failed",
        ]
        assert cell(table, "corral-chat-7b", "policy") == "on-demand"
        assert cell(table, "corral-coder-14b", "policy") == "pinned"
        assert cell(table, "corral-chat-7b", "used") == "3m ago"
        assert cell(table, "corral-embed", "used") == "2h ago"
        assert cell(table, "corral-chat-7b", "load") == "4.2s"
        assert cell(table, "corral-chat-7b", "memory") == "5.1G", "what NVML measured"
        assert cell(table, "corral-coder-14b", "memory") == "~9.8G", "nothing measured yet: the estimate, marked"
        assert cell(table, "corral-embed", "health") == "-", "a stopped container's health means nothing"
        title = str(app.dashboard.query_one("#fleet").border_title)
        assert title == "Containers · 1/4 warm · 1 loading · 1 failed · 2 waiting"


@pytest.mark.asyncio
async def test_a_deployment_event_moves_its_row_from_cold_through_loading_to_warm():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.fleet

        changed = app.feed("deployment", on_demand_view("embed", state="loading", waiting=3, measured_gib=0.6))
        assert changed == {"on_demand"}
        assert cell(table, "corral-embed", "state") == "loading"

        app.feed("deployment", on_demand_view("embed", state="warm", last_used_at=NOW - 1, last_load_s=0.9))
        assert cell(table, "corral-embed", "state") == "warm"
        assert cell(table, "corral-embed", "load") == "900ms"
        assert cell(table, "corral-embed", "used") == "1s ago"
        assert (
            str(app.dashboard.query_one("#fleet").border_title)
            == "Containers · 2/4 warm · 1 loading · 1 failed · 2 waiting"
        )


@pytest.mark.asyncio
async def test_last_used_ages_as_time_passes_with_no_event():
    clock = [NOW]
    app = DashboardHarness(on_demand_box(), now=lambda: clock[0])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.fleet
        assert cell(table, "corral-chat-7b", "used") == "3m ago"

        clock[0] += 120

        await wait_for_async(
            lambda: cell(table, "corral-chat-7b", "used") == "5m ago",
            "the next tick to age the cell",
            pause=pilot.pause,
        )


@pytest.mark.asyncio
async def test_a_load_decision_shows_as_a_toast_in_words():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)

        app.feed(
            "fleet.decision",
            decision(
                "chat-7b",
                "stop",
                "to make room for 'coder-14b' on GPU 0",
                for_deployment="coder-14b",
                need_gib=9.8,
                free_gib=1.2,
            ),
        )
        app.feed("fleet.decision", decision("vision", "refuse", "it needs 40.0 GiB and GPU 0 has 12.0 GiB free"))
        await pilot.pause()

        toasts = [(n.message, n.severity) for n in app._notifications]
        assert (
            "stopped deployment chat-7b: to make room for 'coder-14b' on GPU 0 (needs 9.8 GiB, 1.2 GiB free)",
            "information",
        ) in toasts
        refused = ("refused to start deployment vision: it needs 40.0 GiB and GPU 0 has 12.0 GiB free", "warning")
        assert refused in toasts, "free: said once"


@pytest.mark.asyncio
async def test_a_burst_of_decisions_shows_a_few_toasts_and_a_count_of_the_rest():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)

        for index in range(8):
            app.live.apply("fleet.decision", decision(f"d{index}", "stop", "idle for 10m"))
        app.dashboard.live_changed(app.live, {"decisions"})
        await pilot.pause()

        messages = [n.message for n in app._notifications]
        assert messages == [
            "stopped deployment d5: idle for 10m",
            "stopped deployment d6: idle for 10m",
            "stopped deployment d7: idle for 10m",
            "and 5 earlier load decisions: press i on a deployment for its own",
        ]


@pytest.mark.asyncio
async def test_why_a_deployment_failed_is_one_key_away(tmp_path):
    app = OnDemandHarness(tmp_path / "nobody.sock")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.feed("fleet.decision", decision("vision", "start", "a request for 'vision' arrived", at=NOW - 30))
        await select(pilot, app.dashboard.fleet, "corral-vision")

        await pilot.press("i")
        await wait_for_async(lambda: isinstance(app.screen, DeploymentDetailScreen), "the detail", pause=pilot.pause)

        text = str(app.screen.query_one("#detail-facts", Static).render())
        assert "failed (why: below)" in text
        assert FAILED_LOG in text, "the log's last lines, in full"
        assert "on demand, unloaded after 10m idle, priority 0, load timeout 2m" in text
        assert "started deployment vision: a request for 'vision' arrived" in text
        await pilot.press("escape")
        await wait_for_async(lambda: app.screen is app.dashboard, "back on the dashboard", pause=pilot.pause)


@pytest.mark.asyncio
async def test_the_footer_offers_load_unload_and_pin_on_an_on_demand_deployment_and_start_stop_on_an_always_one(
    tmp_path,
):
    app = OnDemandHarness(tmp_path / "nobody.sock")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await select(pilot, app.dashboard.fleet, "corral-embed")
        hints = footer(app)
        for hint in ("L Load", "U Unload", "P Pin/unpin", "i Details"):
            assert hint in hints
        assert "Start/stop" not in hints

        app.feed("deployment", on_demand_view("embed", mode="always"))
        await pilot.pause()

        hints = footer(app)
        assert "s Start/stop" in hints
        assert "L Load" not in hints
        assert "P Pin" not in hints


@pytest.mark.asyncio
async def test_unloading_a_deployment_with_requests_in_flight_asks_first(tmp_path):
    app = OnDemandHarness(tmp_path / "nobody.sock")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.feed("deployment", on_demand_view("chat-7b", in_flight=2))
        await select(pilot, app.dashboard.fleet, "corral-chat-7b")

        await pilot.press("U")
        await wait_for_async(lambda: isinstance(app.screen, ConfirmScreen), "the confirmation", pause=pilot.pause)
        assert "Unload chat-7b? 2 requests in flight" in str(app.screen.query_one("#question", Static).render())
        await pilot.press("n")
        await wait_for_async(lambda: app.screen is app.dashboard, "the dialog to close", pause=pilot.pause)

        assert not [n for n in app._notifications if n.severity == "error"], (
            "no was no: nothing was asked of the daemon"
        )


@pytest.mark.asyncio
async def test_a_routers_models_show_under_it_with_their_status_and_follow_its_events():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.providers

        assert row_keys(table) == [
            "chat-7b",
            "router",
            *(router_model_key("router", m) for m in ("gemma-2b", "llama-8b", "phi-3", "qwen-0.5b", "broken")),
        ]
        statuses = [cell(table, router_model_key("router", m), "state") for m in ("gemma-2b", "llama-8b", "phi-3")]
        assert statuses == ["loaded", "loading", "sleeping"]
        assert cell(table, router_model_key("router", "broken"), "models") == "broken: exit code 1"
        assert cell(table, "router", "type") == "router"

        app.feed("provider", router_provider("router", [("gemma-2b", "unloaded", ""), ("llama-8b", "loaded", "")]))

        assert cell(table, router_model_key("router", "llama-8b"), "state") == "loaded"
        assert router_model_key("router", "phi-3") not in row_keys(table), "a model gone from its /models goes"


@pytest.mark.asyncio
async def test_the_model_keys_show_on_a_router_models_row_only(tmp_path):
    app = OnDemandHarness(tmp_path / "nobody.sock")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await select(pilot, app.dashboard.providers, "router")
        assert "Load model" not in footer(app)

        await pilot.press("down")
        await pilot.pause()

        assert app.dashboard.providers.cursor_key() == router_model_key("router", "gemma-2b")
        assert "L Load model" in footer(app)
        assert "U Unload model" in footer(app)


@pytest.mark.asyncio
async def test_a_keypress_on_the_containers_panel_is_answered_promptly(tmp_path):
    # Pilot's press and pauses take about 80 ms of their own here; the 100 ms p99 keypress target is measured by the
    # console bench from the terminal's bytes. This bound (as the Jobs panel's) catches a key that waits on
    # something slow, such as a call to the daemon in the handler.
    app = OnDemandHarness(tmp_path / "nobody.sock")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await select(pilot, app.dashboard.fleet, "corral-chat-7b")

        started = time.perf_counter()
        await pilot.press("i")
        await wait_for_async(
            lambda: isinstance(app.screen, DeploymentDetailScreen), "the detail", pause=pilot.pause, timeout_s=5
        )
        elapsed = time.perf_counter() - started

        assert elapsed < 0.5, f"the detail took {elapsed * 1000:.0f} ms to open"


@pytest.mark.asyncio
async def test_every_theme_colours_the_load_states():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.fleet
        for path in sorted(builtin_themes_dir().glob("*.yaml")):
            app.register_theme(load_theme(path))
        for name in sorted(app.available_themes):  # the console's own and Textual's
            app.theme = name

            def failed_in_the_error_colour() -> bool:
                colour = table.get_cell("corral-vision", "state").style.color.triplet.hex  # type: ignore[union-attr]
                return bool(colour == app.theme_variables["error"].lower())

            await wait_for_async(failed_in_the_error_colour, f"{name}'s error colour", pause=pilot.pause)
            warm = table.get_cell("corral-chat-7b", "state").style.color.triplet.hex  # type: ignore[union-attr]
            assert warm == app.theme_variables["success"].lower()


@pytest.mark.asyncio
async def test_the_command_palette_offers_the_selected_deployments_keys_with_what_they_do(tmp_path):
    app = OnDemandHarness(tmp_path / "nobody.sock")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await select(pilot, app.dashboard.fleet, "corral-embed")

        entries = {name: help_text for name, help_text, _ in CorralCommands(app.dashboard)._entries()}

        assert entries["Load: embed"] == (
            "Load the model now (making room on its GPUs) and wait until it is warm · key: L"
        ), "its tooltip and its key here, never its binding id"
        assert "Unload: embed" in entries
        assert "Pin/unpin: embed" in entries
        assert "Always/on demand: embed" in entries, "left out of the footer for room, offered here"
        assert "Start/stop: embed" not in entries, "an on-demand deployment is loaded and unloaded instead"


def test_live_state_keeps_each_deployments_load_state_and_the_newest_decisions():
    live = LiveState()
    live.apply("snapshot", on_demand_box())
    assert sorted(live.on_demand) == ["chat-7b", "coder-14b", "embed", "vision"]

    assert live.apply("deployment", on_demand_view("embed", state="loading")) == {"on_demand"}
    assert live.on_demand["embed"]["state"] == "loading"

    seen = live.decisions_seen
    for index in range(DECISIONS_KEPT + 5):
        assert live.apply("fleet.decision", decision(f"d{index}", "stop", "idle for 10m")) == {"decisions"}
    news = live.decisions_since(seen)
    assert len(news) == DECISIONS_KEPT, "bounded: the oldest go"
    assert news[-1]["deployment"] == f"d{DECISIONS_KEPT + 4}"
    assert live.decisions_since(live.decisions_seen) == []
    assert not live.unknown_kinds


@pytest.mark.asyncio
async def test_a_systemd_deployment_has_a_row_though_the_engine_lists_no_container_for_it():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.fleet

        app.feed("deployment", on_demand_view("bare-metal", kind="systemd", state="cold", gpus=(0, 1)))

        assert cell(table, "bare-metal", "state") == "cold"
        assert cell(table, "bare-metal", "gpus") == "0,1"
        assert cell(table, "bare-metal", "model") == "systemd unit"
        app.feed("deployment", on_demand_view("gone", kind="container", state="cold"))
        assert "gone" not in row_keys(table), "a container deployment shows with its container only"


@pytest.mark.asyncio
async def test_a_removed_deployment_leaves_the_load_states_at_once():
    app = DashboardHarness(on_demand_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)

        changed = app.feed("deployment.removed", {"name": "embed"})

        assert changed == {"on_demand"}
        assert "embed" not in app.live.on_demand
        assert str(app.dashboard.query_one("#fleet").border_title).startswith("Containers · 1/3 warm")
