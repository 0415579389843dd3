"""The dashboard follows LiveState by row key: rows appear, change in place, and go; the cursor stays put."""

from __future__ import annotations

import pytest
from textual.screen import Screen

from console.screens.dashboard import DashboardScreen, Throughput
from console.widgets.panels import finished_key
from tests.console.dashboard_data import (
    NOW,
    DashboardHarness,
    busy_box,
    cell,
    deployment,
    fleet,
    no_gpus,
    provider,
    request,
    row_keys,
    settle,
    snapshot,
)
from tests.testbed.waiting import wait_for_async

# -- rows follow LiveState by key -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_every_panel_shows_one_row_per_gpu_deployment_provider_key_and_request():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.dashboard

        assert row_keys(screen.gpus) == ["GPU-0000", "GPU-0001"]
        assert row_keys(screen.fleet) == ["corral-gpu0", "corral-gpu1"]
        assert row_keys(screen.providers) == ["gpu0", "gpu1", "openai"]
        assert row_keys(screen.keys) == ["0f9e8d7c6b5a", "112233445566", "a1b2c3d4e5f6"]  # sorted by name
        assert row_keys(screen.requests) == ["req-1", "req-2", "req-3"]  # arrival order


@pytest.mark.asyncio
async def test_cells_show_the_values_an_operator_reads():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.dashboard

        assert cell(screen.gpus, "GPU-0000", "util").endswith("87%")
        assert cell(screen.gpus, "GPU-0000", "memory").endswith("9.6/80.0G")
        assert cell(screen.gpus, "GPU-0000", "power") == "512/700W"
        assert cell(screen.gpus, "GPU-0000", "processes") == "llama-server(4242) 9.1G"
        assert cell(screen.fleet, "corral-gpu0", "slots") == "2/4"  # req-1 and req-2 run on gpu0
        assert cell(screen.fleet, "corral-gpu0", "uptime") == "1h02m"
        assert cell(screen.fleet, "corral-gpu0", "model") == "qwen2.5-7b-instruct-q4_k_m.gguf"
        assert cell(screen.providers, "openai", "state") == "circuit_open"
        assert cell(screen.providers, "openai", "load") == "1/16"
        assert cell(screen.providers, "openai", "errors") == "20.0%"
        assert cell(screen.providers, "gpu0", "p50") == "840ms"
        assert cell(screen.keys, "a1b2c3d4e5f6", "limits") == "60/100k/-"
        assert cell(screen.keys, "a1b2c3d4e5f6", "used") == "12s ago"
        assert cell(screen.keys, "a1b2c3d4e5f6", "models") == "all"
        assert cell(screen.keys, "112233445566", "expiry") == "revoked"
        assert cell(screen.keys, "0f9e8d7c6b5a", "expiry") == "in 10d00h"
        assert cell(screen.requests, "req-2", "elapsed") == "1m15s"
        assert cell(screen.requests, "req-2", "rate") == "32.0"


@pytest.mark.asyncio
async def test_values_a_device_does_not_support_show_as_a_dash():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.gpus

        assert [cell(table, "GPU-0001", column) for column in ("util", "temp", "power")] == ["-", "-", "-"]
        assert cell(table, "GPU-0001", "processes") == "idle"


@pytest.mark.asyncio
async def test_a_provider_state_change_repaints_only_its_row_and_keeps_the_cursor(monkeypatch):
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.providers
        table.focus()
        table.move_cursor(row=table.get_row_index("gpu1"))
        await pilot.pause()
        painted: list[int] = []
        real_render_line = table.render_line
        monkeypatch.setattr(table, "render_line", lambda y: (painted.append(y), real_render_line(y))[1])

        app.feed("provider", provider("gpu1", state="ready", capacity=2, models=("llama3-8b",)))
        await pilot.pause()

        assert cell(table, "gpu1", "state") == "ready"
        assert painted == [1 + table.get_row_index("gpu1")], "one line under the header: gpu1's"
        assert row_keys(table) == ["gpu0", "gpu1", "openai"]
        assert table.cursor_key() == "gpu1"


@pytest.mark.asyncio
async def test_a_click_on_a_row_focuses_the_table_and_puts_the_cursor_there():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.keys

        await pilot.click("#keys-table", offset=(4, 2))  # line 0 is the header, then batch, old-ci, webapp
        await pilot.pause()

        assert table.has_focus
        assert table.cursor_key() == "112233445566"


@pytest.mark.asyncio
async def test_the_cursor_stays_on_its_row_when_rows_above_come_and_go():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.providers
        table.move_cursor(row=table.get_row_index("openai"))

        app.feed("provider.removed", {"name": "gpu0"})
        await pilot.pause()
        assert table.cursor_key() == "openai"

        app.feed("provider", provider("a-new-one"))  # sorts in above
        await pilot.pause()
        assert row_keys(table) == ["a-new-one", "gpu1", "openai"]
        assert table.cursor_key() == "openai"


@pytest.mark.asyncio
async def test_a_removed_provider_and_key_lose_their_rows_and_a_finished_request_stays_below_as_done():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.dashboard

        app.feed("provider.removed", {"name": "gpu1"})
        app.feed("key.removed", {"id": "112233445566"})
        app.feed("request.end", {**request("req-1"), "status": 200, "ok": True, "prompt_tokens": 12})
        await pilot.pause()

        assert row_keys(screen.providers) == ["gpu0", "openai"]
        assert "112233445566" not in row_keys(screen.keys)
        assert row_keys(screen.requests) == ["req-2", "req-3", finished_key("req-1")]  # running first, then done
        assert cell(screen.requests, finished_key("req-1"), "status") == "200"
        assert cell(screen.fleet, "corral-gpu0", "slots") == "1/4"
        assert cell(screen.fleet, "corral-gpu1", "slots") == "0/-", "no provider named gpu1 any more"


@pytest.mark.asyncio
async def test_without_a_driver_the_gpu_panel_says_so_and_why():
    reason = "no NVIDIA driver: libnvidia-ml.so.1 was not found (install the NVIDIA driver to see GPUs)"
    app = DashboardHarness(snapshot(providers=[provider("gpu0")], gpu_data=no_gpus(reason)))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        notice = app.dashboard.query_one("#gpus .notice")

        assert notice.display
        assert "no NVIDIA driver" in str(notice.render())
        assert "libnvidia-ml.so.1 was not found" in str(notice.render())
        assert app.dashboard.gpus.row_count == 0


@pytest.mark.asyncio
async def test_an_unreachable_docker_engine_shows_its_reason():
    engine_down = {
        "engine": {"state": "unavailable", "reason": "Docker is not running at unix:///var/run/docker.sock"},
        "deployments": [],
    }
    app = DashboardHarness(snapshot(providers=[provider("gpu0")], fleet_data=engine_down))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        notice = app.dashboard.query_one("#fleet .notice")

        assert notice.display
        assert "Docker is not running at unix:///var/run/docker.sock" in str(notice.render())


# -- first run --------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_first_run_shows_what_to_do_until_a_provider_exists():
    app = DashboardHarness(snapshot())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.dashboard
        first_run = screen.query_one("#first-run")
        hints = " ".join(str(hint.render()) for hint in first_run.query(".hint-key"))

        assert first_run.display
        assert not screen.query_one("#providers").display
        for hint in ("d  deploy a model", "p  add an endpoint", "n  create a key"):
            assert hint in hints

        app.feed("provider", provider("gpu0"))
        await settle(pilot)

        assert not first_run.display
        assert screen.query_one("#providers").display
        assert row_keys(screen.providers) == ["gpu0"]
        assert screen.focused is screen.providers


@pytest.mark.asyncio
async def test_first_run_says_why_deploying_cannot_work_without_a_docker_engine():
    reason = "cannot reach the Docker engine at unix:///var/run/docker.sock: No such file; is dockerd running?"
    engine_down = {"engine": {"state": "unavailable", "reason": reason}, "deployments": []}
    app = DashboardHarness(snapshot(fleet_data=engine_down))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        why = app.dashboard.query_one("#first-run-why-d")

        assert app.dashboard.query_one("#first-run").display
        assert str(why.render()) == f"needs Docker: {reason}"
        assert why.has_class("-problem")

        app.feed("fleet", {"engine": {"state": "ok", "reason": ""}, "deployments": []})
        await settle(pilot)

        assert str(why.render()) == "run a GGUF file with llama-server in a container"
        assert not why.has_class("-problem")


@pytest.mark.asyncio
async def test_before_the_snapshot_the_dashboard_waits_instead_of_claiming_a_first_run():
    app = DashboardHarness(data=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.dashboard

        assert not screen.query_one("#first-run").display
        assert "waiting for corral-core" in str(screen.query_one("#gpus .notice").render())
        assert "waiting for corral-core" in str(screen.query_one("#fleet .notice").render())

        app.feed("snapshot", snapshot())
        await pilot.pause()
        assert screen.query_one("#first-run").display


@pytest.mark.asyncio
async def test_a_deployment_alone_also_ends_the_first_run():
    app = DashboardHarness(snapshot())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.feed("fleet", fleet(deployment("gpu0")))
        await pilot.pause()

        assert not app.dashboard.query_one("#first-run").display


@pytest.mark.asyncio
async def test_first_run_keys_ask_the_app_for_its_actions():
    app = DashboardHarness(snapshot())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("d", "p", "n")
        await pilot.pause()

        assert [message.action_id for message in app.posted] == ["fleet.deploy", "provider.add", "key.create"]
        ids = {binding.id for binding in DashboardScreen.BINDINGS}  # type: ignore[union-attr]
        assert {"fleet.deploy", "provider.add", "key.create"} <= ids


# -- live requests ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_selected_live_request_can_be_cancelled():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.requests
        table.focus()
        await pilot.pause()
        await pilot.press("down")
        await pilot.press("x")
        await pilot.pause()

        cancels = [m for m in app.posted if isinstance(m, DashboardScreen.CancelRequest)]
        assert [m.request_id for m in cancels] == ["req-2"]
        assert "request.cancel" in {b.id for b in table.BINDINGS}  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_progress_updates_tokens_in_place():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.feed(
            "request.progress",
            request(
                "req-1",
                provider="gpu0",
                model="qwen2.5-7b",
                key_name="webapp",
                started_at=NOW - 4,
                completion_tokens=1234,
                tokens_per_s=50.5,
            ),
        )
        await pilot.pause()

        table = app.dashboard.requests
        assert cell(table, "req-1", "tokens") == "1.2k"
        assert cell(table, "req-1", "rate") == "50.5"
        assert row_keys(table) == ["req-1", "req-2", "req-3"]


# -- the clock and throughput ----------------------------------------------------------------------------


def test_throughput_counts_ended_requests_and_grown_tokens_per_provider_per_second():
    clock = [NOW]
    throughput = Throughput(lambda: clock[0])
    throughput.observe({"r1": request("r1", provider="gpu0"), "r2": request("r2", provider="gpu1")})
    throughput.observe(
        {"r1": request("r1", provider="gpu0", completion_tokens=40)},  # r1 grew by 40
        [request("r2", provider="gpu1")],
    )  # r2 ended

    assert not throughput.roll(), "nothing to close within the same second"
    clock[0] += 1
    assert throughput.roll()

    assert throughput.series("gpu0", 0)[-1] == 0
    assert throughput.series("gpu0", 1)[-1] == 40
    assert throughput.series("gpu1", 0)[-1] == 1
    assert throughput.total[-1] == (1, 40)

    clock[0] += 3  # quiet seconds count as zeros
    assert throughput.roll()
    assert throughput.series("gpu1", 0, last=4) == [1, 0, 0, 0]


def test_throughput_counts_requests_that_came_and_went_between_two_looks_but_not_ones_a_snapshot_dropped():
    clock = [NOW]
    throughput = Throughput(lambda: clock[0])
    throughput.observe({"r1": request("r1", provider="gpu0", completion_tokens=5)})
    throughput.observe(
        {},
        [
            request("r2", provider="gpu1", completion_tokens=30),  # never seen live
            request("r1", provider="gpu0", completion_tokens=12),
        ],
    )  # 7 more than seen
    throughput.observe({"r3": request("r3", provider="gpu0")})
    throughput.observe({})  # r3 vanished without an end: a reconnect's snapshot, not a finished request

    clock[0] += 1
    assert throughput.roll()
    assert throughput.total[-1] == (2, 37)
    assert throughput.series("gpu1", 1)[-1] == 30


@pytest.mark.asyncio
async def test_ages_and_rates_move_with_the_clock_without_any_event():
    clock = [NOW]
    app = DashboardHarness(busy_box(), now=lambda: clock[0])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.dashboard
        app.feed("request.end", {**request("req-1"), "status": 200, "ok": True, "prompt_tokens": 12})

        clock[0] += 1
        await wait_for_async(
            lambda: str(screen.query_one("#requests-rate").render()) == "req/s 1", "the total rate", pause=pilot.pause
        )

        assert cell(screen.providers, "gpu0", "requests_s") == "▁▁▁▁▁█ 1"
        assert cell(screen.providers, "gpu1", "requests_s") == "▁▁▁▁▁▁ 0", "no traffic is a flat line, not a gap"
        assert cell(screen.requests, "req-2", "elapsed") == "1m16s"

        clock[0] += 9
        await wait_for_async(
            lambda: cell(screen.requests, "req-2", "elapsed") == "1m25s", "the next tick", pause=pilot.pause
        )

        assert cell(screen.keys, "a1b2c3d4e5f6", "used") == "22s ago"
        assert cell(screen.fleet, "corral-gpu0", "uptime") == "1h02m"
        assert cell(screen.providers, "gpu0", "requests_s") == "▁▁▁▁▁▁ 0"


@pytest.mark.asyncio
async def test_coming_back_to_the_dashboard_catches_up_with_what_changed_while_away():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await app.push_screen(Screen())
        app.live.apply("provider", provider("late-arrival"))  # the app feeds only the screens it shows
        app.live.apply("request.end", {**request("req-1"), "status": 200, "ok": True, "prompt_tokens": 1})

        app.pop_screen()
        await settle(pilot)

        assert "late-arrival" in row_keys(app.dashboard.providers)
        assert "req-1" not in row_keys(app.dashboard.requests)


@pytest.mark.asyncio
async def test_a_new_theme_recolours_the_cells():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.dashboard.providers

        def colour() -> str:
            return table.get_cell("gpu0", "state").style.color.triplet.hex  # type: ignore[union-attr]

        assert colour() == "#6cc283"  # corral-dark's success
        app.theme = "textual-light"
        await wait_for_async(lambda: colour() != "#6cc283", "the new theme", pause=pilot.pause)

        assert colour() == app.theme_variables["success"].lower()


# -- layout -----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_at_80x24_tab_moves_between_panels_and_the_focused_one_opens():
    app = DashboardHarness(busy_box())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.dashboard
        assert screen.has_class("-compact")
        assert screen.focused is screen.providers

        await pilot.press("tab")
        await pilot.pause()

        assert screen.focused is screen.keys
        assert screen.query_one("#keys").outer_size.height > 5
        assert screen.query_one("#providers").outer_size.height == 1
