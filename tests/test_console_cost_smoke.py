"""The console-cost benchmark still runs end to end: a tiny state, the real console on a pty, every key answered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.llama_server, pytest.mark.docker, pytest.mark.nvml_stub]

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 90


def run_console_smoke(out: Path, llama_server_binary: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRAL_LLAMA_SERVER": str(llama_server_binary)}
    command = [sys.executable, "-m", "bench", "--plan", "console-smoke", "--out", str(out)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()  # the runner stops everything it started on SIGTERM
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate(timeout=5)
        pytest.fail(f"the console smoke plan did not finish in {TIMEOUT_S} s:\n{output[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output, None)


def test_console_smoke_plan_measures_frames_cpu_and_every_key(tmp_path: Path, llama_server_binary: Path,
                                                               llama_server_image: str, nvml_stub: object) -> None:
    result = run_console_smoke(tmp_path, llama_server_binary)

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
    (stream,) = console["streaming"]
    assert (stream["outcome"], stream["tokens"]) == ("done", 5000), stream
    assert stream["tokens_per_s"] > 0
    assert console["traffic"].get("failed", 0) == 0, console["traffic"]
    targets = json.loads((tmp_path / "latest-console.json").read_text())["targets"]
    assert [row["target"].split(":")[0] for row in targets] == ["console"] * 4
