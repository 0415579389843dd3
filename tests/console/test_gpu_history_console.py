"""The GPU history, provider history and GPU processes screens, opened from the dashboard of a console on a real
corral-core (its GPUs from the NVML stub, its provider a real llama-server)."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from console.app import CorralApp
from console.screens.gpu_history import GpuHistoryScreen, ProviderHistoryScreen
from console.screens.processes import ProcessesScreen
from console.widgets.gpu_history import HistoryChart
from tests.fleet.test_gpus import H100
from tests.testbed import CorralDaemon, write_devices
from tests.testbed.nvml import measured_processes
from tests.testbed.waiting import wait_for_async

APP_WAIT_S = 15.0
pytestmark = [pytest.mark.asyncio, pytest.mark.nvml_stub]


@pytest.fixture(autouse=True)
def private_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def gpu_process(tmp_path, nvml_stub):
    """A corral-core whose one GPU runs one real process (a `sleep` the stub lists by its environment)."""
    marker = f"CORRAL_TEST_GPU_PROCESS={uuid.uuid4().hex}"
    key, value = marker.split("=", 1)
    devices = write_devices(tmp_path / "gpus.json", [{**H100, "processes": [measured_processes(marker, 2**30)]}])
    child = subprocess.Popen(["sleep", "120"], env={**os.environ, key: value})
    daemon = CorralDaemon(
        tmp_path / "corral", extra_env=nvml_stub.environment(devices), extra_args=("--gpu-interval", "0.2")
    ).start()
    yield daemon, child.pid
    daemon.stop()
    child.kill()
    child.wait()


def chart_lines(screen, index: int) -> list[str]:
    chart = screen.query_one(f"#history-chart-{index}", HistoryChart).chart
    return [line.label for line in chart.lines] if chart else []


async def test_h_on_the_gpus_panel_draws_an_hour_of_each_gpu_and_the_number_keys_switch_the_window(gpu_process):
    daemon, _ = gpu_process
    app = CorralApp(daemon.socket_path, daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.screen
        await wait_for_async(lambda: dashboard.gpus.row_count, "the GPU row", APP_WAIT_S, pause=pilot.pause)
        dashboard.gpus.focus()
        await pilot.press("H")
        await wait_for_async(
            lambda: isinstance(app.screen, GpuHistoryScreen), "the GPU history", APP_WAIT_S, pause=pilot.pause
        )
        screen = app.screen
        await wait_for_async(lambda: screen.loads, "the first answer drawn", APP_WAIT_S, pause=pilot.pause)
        assert screen.minutes == 15
        assert chart_lines(screen, 0) == ["GPU0"]
        utilisation = screen.query_one("#history-chart-0", HistoryChart).chart
        assert utilisation is not None
        assert utilisation.lines[0].values[-1] == H100["utilization_gpu"], "the newest bucket holds the sample"

        drawn = screen.loads
        await pilot.press("1")
        await wait_for_async(lambda: screen.loads > drawn, "the one-minute window", APP_WAIT_S, pause=pilot.pause)
        assert screen.minutes == 1
        assert len(screen.query_one("#history-chart-0", HistoryChart).chart.lines[0].values) == 60
        await pilot.press("w")
        assert screen.minutes == 5
        await pilot.press("escape")
        await wait_for_async(lambda: app.screen is dashboard, "back on the dashboard", APP_WAIT_S, pause=pilot.pause)


async def test_t_on_the_gpus_panel_lists_the_gpus_processes_with_the_host_line(gpu_process):
    daemon, pid = gpu_process
    app = CorralApp(daemon.socket_path, daemon.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.screen
        await wait_for_async(lambda: dashboard.gpus.row_count, "the GPU row", APP_WAIT_S, pause=pilot.pause)
        dashboard.gpus.focus()
        await pilot.press("t")
        await wait_for_async(
            lambda: isinstance(app.screen, ProcessesScreen), "the processes screen", APP_WAIT_S, pause=pilot.pause
        )
        screen = app.screen
        row = f"0:{pid}"
        await wait_for_async(lambda: row in screen.table.row_keys, "the sleep's row", APP_WAIT_S, pause=pilot.pause)
        assert screen.table.get_cell(row, "command") == "sleep 120"
        assert screen.table.get_cell(row, "gpu_memory") == "1.0G"
        assert screen.table.get_cell(row, "sm") == "n/a", "the stub's GPU reports no per-process utilisation"
        await wait_for_async(
            lambda: screen.table.get_cell(row, "cpu") != "…", "CPU % from a second look", APP_WAIT_S, pause=pilot.pause
        )
        host = str(screen.query_one("#processes-host").render())
        assert host.startswith("CPU ")
        assert " RAM " in host
        note = str(screen.query_one("#processes-note").render())
        assert "SM % n/a" in note
        await pilot.press("escape")
        await wait_for_async(lambda: app.screen is dashboard, "back on the dashboard", APP_WAIT_S, pause=pilot.pause)


@pytest.mark.llama_server
async def test_h_elsewhere_on_the_dashboard_draws_each_providers_request_rate(tmp_path, shared_llama_server):
    daemon = CorralDaemon(tmp_path / "corral", extra_args=("--gpu-interval", "0.2")).start()
    try:
        daemon.add_provider("local", shared_llama_server.base_url)
        app = CorralApp(daemon.socket_path, daemon.data_dir, autostart=False)
        async with app.run_test(size=(120, 40)) as pilot:
            dashboard = app.screen
            await wait_for_async(
                lambda: "local" in dashboard.providers.row_keys, "the provider row", APP_WAIT_S, pause=pilot.pause
            )
            dashboard.providers.focus()
            await pilot.press("H")
            await wait_for_async(
                lambda: isinstance(app.screen, ProviderHistoryScreen), "the history", APP_WAIT_S, pause=pilot.pause
            )
            screen = app.screen
            await wait_for_async(lambda: chart_lines(screen, 0), "the provider's line", APP_WAIT_S, pause=pilot.pause)
            assert chart_lines(screen, 0) == ["local"]
            assert chart_lines(screen, 1) == ["local"]
    finally:
        daemon.stop()


@pytest.fixture
def no_driver(tmp_path, nvml_stub):
    """A corral-core whose NVML library loads but finds no driver (the stub without its devices file)."""
    daemon = CorralDaemon(tmp_path / "corral", extra_env=nvml_stub.environment(tmp_path / "missing.json")).start()
    yield daemon
    daemon.stop()


async def test_without_a_driver_the_processes_and_history_screens_say_why(no_driver):
    app = CorralApp(no_driver.socket_path, no_driver.data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        dashboard = app.screen
        await wait_for_async(lambda: app.live.status is not None, "the snapshot", APP_WAIT_S, pause=pilot.pause)
        dashboard.gpus.focus()
        await pilot.press("t")
        await wait_for_async(lambda: getattr(app.screen, "loads", 0), "the processes", APP_WAIT_S, pause=pilot.pause)
        note = str(app.screen.query_one("#processes-note").render())
        assert note.startswith("GPUs unavailable: "), note
        assert app.screen.table.row_count == 0
        await pilot.press("escape")
        await pilot.press("H")
        await wait_for_async(lambda: getattr(app.screen, "loads", 0), "the GPU history", APP_WAIT_S, pause=pilot.pause)
        assert isinstance(app.screen, GpuHistoryScreen)
        assert "no GPU sampled" in str(app.screen.query_one("#history-note").render())
