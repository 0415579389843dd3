"""The deploy form's load policy: "On demand" reveals idle TTL, pin and priority, checked as the daemon checks
them, and the plan (and so the deployment) carries the policy; driven with Pilot against a real corral-core."""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App
from textual.widgets import Checkbox, Input

from console.screens.deploy_form import DeployForm
from tests.console.test_forms import SIZE, FormHost, shown, text, type_into
from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for_async

ALWAYS = {"mode": "always", "idle_ttl_s": 600.0, "pin": False, "priority": 0, "load_timeout_s": 120.0}
CHOSEN = {"mode": "on-demand", "idle_ttl_s": 90.0, "pin": True, "priority": -3, "load_timeout_s": 120.0}


def visible(app: App[Any], field: str) -> bool:
    return app.screen.query_one(f"#{field}-field").display


def planned_load(app: App[Any]) -> object:
    form = app.screen
    assert isinstance(form, DeployForm)
    return form.plan["spec"]["load"] if form.plan else None


@pytest.mark.asyncio
async def test_on_demand_reveals_its_fields_and_the_plan_carries_the_policy(fleet_daemon: CorralDaemon) -> None:
    app = FormHost(fleet_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(DeployForm())
        await pilot.pause()
        await wait_for_async(lambda: "KV cache" in text(app, "#plan"), "the first plan", pause=pilot.pause)
        assert not any(visible(app, field) for field in ("idle_ttl", "pin", "priority"))
        assert planned_load(app) == ALWAYS

        app.screen.query_one("#on_demand", Checkbox).value = True
        await pilot.pause()
        assert all(visible(app, field) for field in ("idle_ttl", "pin", "priority"))
        await type_into(pilot, "#idle_ttl", "90s")
        await type_into(pilot, "#priority", "-3")
        app.screen.query_one("#pin", Checkbox).value = True

        await wait_for_async(
            lambda: planned_load(app) == CHOSEN,
            "a plan with the on-demand policy",
            pause=pilot.pause,
        )


@pytest.mark.asyncio
async def test_a_duration_is_checked_as_the_daemon_reads_it(fleet_daemon: CorralDaemon) -> None:
    app = FormHost(fleet_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(DeployForm())
        await pilot.pause()
        app.screen.query_one("#on_demand", Checkbox).value = True
        await pilot.pause()

        await type_into(pilot, "#idle_ttl", "soon")
        assert "'soon' is not a duration; give seconds or a duration such as 90s" in text(app, "#idle_ttl-error")
        await type_into(pilot, "#idle_ttl", "45d")
        assert "45d: Input should be less than or equal to 2592000" in text(app, "#idle_ttl-error")
        await type_into(pilot, "#idle_ttl", "1h30m")
        assert not shown(app, "#idle_ttl-error")
        await type_into(pilot, "#priority", "5000")
        assert "less than or equal to 1000" in text(app, "#priority-error")


@pytest.mark.asyncio
async def test_a_bad_policy_field_hidden_by_turning_on_demand_off_does_not_block_the_plan(
    fleet_daemon: CorralDaemon,
) -> None:
    app = FormHost(fleet_daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        app.open(DeployForm())
        await pilot.pause()
        app.screen.query_one("#on_demand", Checkbox).value = True
        await pilot.pause()
        await type_into(pilot, "#idle_ttl", "soon")

        app.screen.query_one("#on_demand", Checkbox).value = False
        await type_into(pilot, "#ctx_size", "1024")

        await wait_for_async(
            lambda: "1024 ctx" in text(app, "#plan"), "a plan despite the hidden field", pause=pilot.pause
        )
        assert planned_load(app) == ALWAYS
        assert app.screen.query_one("#idle_ttl", Input).value == "soon", "kept for when it is ticked again"
