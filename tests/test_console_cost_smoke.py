"""The console-cost benchmark still runs end to end: a tiny state, the real console on a pty, every key answered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench_run import run_bench

pytestmark = [pytest.mark.llama_server, pytest.mark.docker, pytest.mark.nvml_stub]

TIMEOUT_S = 180  # the dashboard's plan, then the filter and GPU-history scenarios'


def test_console_smoke_plan_measures_frames_cpu_and_every_key(
    tmp_path: Path, llama_server_binary: Path, llama_server_image: str, nvml_stub: object
) -> None:
    result = run_bench(["--plan", "console-smoke"], tmp_path, llama_server_binary, TIMEOUT_S)

    assert result.returncode == 0, result.stdout[-3000:]
    assert (tmp_path / "latest-console.md").read_text().startswith("# Corral benchmark (console-smoke plan")
    console = json.loads((tmp_path / "latest-console.json").read_text())["results"]["console"]
    state = console["state"]
    assert (state["gpus"], state["deployments"], state["providers"], state["keys"]) == (2, 1, 3, 10), state
    assert state["live_requests_at_start"] >= 19
    assert 0 < console["first_frame_s"] <= console["first_data_frame_s"]
    assert console["idle"]["cpu_pct"] > 0
    assert console["idle"]["live_requests"] >= 19
    keys = console["keypress_ms"]
    assert (keys["count"], keys["timeouts"]) == (12, 0), keys
    assert keys["p50"] <= keys["p99"] <= keys["max"]
    busy = console["busy_gateway"]
    assert busy["requests"] > 0
    assert busy["errors"] == 0, busy["error_samples"]
    assert busy["keypress_ms"]["count"] >= 1, busy
    assert busy["keypress_ms"]["timeouts"] == 0, busy
    (stream,) = console["streaming"]
    assert (stream["outcome"], stream["tokens"]) == ("done", 5000), stream
    assert stream["tokens_per_s"] > 0
    assert console["traffic"].get("failed", 0) == 0, console["traffic"]
    report = json.loads((tmp_path / "latest-console.json").read_text())
    targets = [row["target"].split(":")[0] for row in report["targets"]]
    # Each feature scenario's own (a filter over the live rows; GPU history and processes), then the dashboard's 4.
    assert (
        targets
        == ["console, a filter over 500 live rows"] * 4
        + ["console, 8 GPUs' hour of history, processes open"] * 3
        + ["console"] * 4
    ), targets
    keystroke = report["results"]["console_filter"]["keystroke"]
    assert 0 < keystroke["p50_ms"] <= keystroke["p99_ms"]
    assert report["results"]["console_gpu_history"]["first_frame_s"] > 0
