"""Run `python -m bench` as the smoke tests do: in its own process, bounded in time, stopped cleanly on timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_bench(
    args: list[str], out: Path, llama_server_binary: Path, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRAL_LLAMA_SERVER": str(llama_server_binary)}
    command = [sys.executable, "-m", "bench", *args, "--out", str(out)]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.terminate()  # the runner stops everything it started on SIGTERM
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate(timeout=5)
        pytest.fail(f"`{' '.join(command[1:])}` did not finish in {timeout_s:.0f} s:\n{output[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output, None)
