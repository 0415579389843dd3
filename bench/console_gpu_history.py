"""The console with GPU history for 8 GPUs over an hour, and with the processes view open.

corral-core runs with 8 H100s from the testbed's NVML stub, each running real processes, and its GPU rings already
hold an hour of one-second samples (filled at start, as an hour of uptime would leave them; the sampler then goes
on adding real ones). The real console runs on a pty (`bench.console_terminal`, with a probe that also reports the
history and processes screens). Measured: the first frame; H on the GPUs panel to the first frame of charts;
the console's and corral-core's CPU while the history shows the last hour (asked every 30 s) and the last minute
(asked every second); window keys (1, 2, 3, 4, w) to their first frame; then t to the processes screen, its idle
CPU (asked every 2 s) and cursor keys there. Targets: first frame < 1 s, idle < 10 % of a core, keypress p99 <
100 ms. Also the admin route alone: GET /gpus/history for the hour at 120 points, and GET /gpus/processes.

    python -m bench.console_gpu_history [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.console_cost import latency_summary
from bench.console_keys import GAP_S, KEY_TIMEOUT_S, KeyLog, focus, press
from bench.console_state import gpu_devices
from bench.console_terminal import ConsoleTerminal, Record
from bench.processes import cpu_seconds
from bench.stats import percentile
from gateway_core.fleet.gpus import GpuDevice, GpuSnapshot
from gateway_core.state import GatewayState
from tests.testbed import CorralDaemon, ensure_nvml_stub, write_devices
from tests.testbed.child_processes import die_with_parent

GPUS = 8
HOUR_S = 3600
FIRST_FRAME_TIMEOUT_S = 30.0
WINDOW_KEYS = {"1": 1, "2": 5, "3": 15, "4": 60}
ROUTE_CALLS = 20
IDLE_WINDOWS = ("idle_history_60min", "idle_history_1min", "idle_processes")
KEY_RUNS = ("window_keys_ms", "processes_keys_ms")


def hour_of_samples(devices: list[dict[str, Any]], history: Any, end: float) -> None:
    """One sample a second for the hour before `end`, each GPU's readings wandering around the stub's."""
    for second in range(HOUR_S):
        wobble = math.sin(second / 120)
        history.record(
            GpuSnapshot(
                state="ok",
                devices=tuple(
                    GpuDevice(
                        index=index,
                        uuid=device["uuid"],
                        name=device["name"],
                        memory_total_bytes=device["memory_total"],
                        memory_used_bytes=int(device["memory_used"] * (1 + 0.2 * wobble)),
                        utilization_percent=max(0, min(100, int(device["utilization_gpu"] + 30 * wobble))),
                        temperature_c=device["temperature"] + int(5 * wobble),
                        power_draw_watts=device["power_usage_mw"] / 1000 * (1 + 0.3 * wobble),
                    )
                    for index, device in enumerate(devices)
                ),
            ),
            end - HOUR_S + second,
        )


def serve(argv: list[str]) -> int:
    """corral-core, its GPU rings filled with the hour before now (the devices file names the GPUs)."""
    import gateway_core.server
    from gateway_core.cli import main

    devices = json.loads(Path(os.environ["CORRAL_NVML_STUB_CONFIG"]).read_text())["devices"]

    class HourOldState(GatewayState):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            hour_of_samples(devices, self.gpu_history, self.clock.time())

    gateway_core.server.GatewayState = HourOldState  # type: ignore[attr-defined]  # serve() builds its state by this name
    return main(argv)


class HourOldDaemon(CorralDaemon):
    """CorralDaemon, its corral-core started through `serve` above."""

    def _spawn(self) -> None:
        command = [
            sys.executable,
            "-m",
            "bench.console_gpu_history",
            "--serve",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--socket",
            str(self.socket_path),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **self.extra_env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )


class HistoryTerminal(ConsoleTerminal):
    """ConsoleTerminal running bench/console_gpu_history_probe.py's probe: the same pty, records and keys."""

    def start(self) -> ConsoleTerminal:
        import bench.console_terminal as terminal_module

        real_executable = sys.executable
        # ConsoleTerminal starts `python -m bench.console_probe ...`; this wrapper runs the same with our probe.
        wrapper = self.workdir / "history-probe"
        wrapper.write_text(f'#!/bin/sh\nshift 2\nexec {real_executable} -m bench.console_gpu_history_probe "$@"\n')
        wrapper.chmod(0o755)
        terminal_module.sys.executable = str(wrapper)  # type: ignore[attr-defined]
        try:
            return super().start()
        finally:
            terminal_module.sys.executable = real_executable  # type: ignore[attr-defined]


def idle(terminal: ConsoleTerminal, core_pid: int, seconds: float) -> dict[str, Any]:
    console_before, core_before, started = terminal.cpu_seconds(), cpu_seconds(core_pid), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - started
    return {
        "window_s": round(wall, 2),
        "console_cpu_pct": round(100 * (terminal.cpu_seconds() - console_before) / wall, 1),
        "corral_core_cpu_pct": round(100 * (cpu_seconds(core_pid) - core_before) / wall, 1),
        "frames_per_s": round(terminal.frames_between(started, started + wall) / wall, 1),
    }


def press_until(terminal: ConsoleTerminal, key: str, answered: Any) -> tuple[float, Record]:
    written_at = terminal.press(key)
    record = terminal.wait_for(answered, written_at, FIRST_FRAME_TIMEOUT_S)
    if record is None:
        raise RuntimeError(f"{key!r} was not answered within {FIRST_FRAME_TIMEOUT_S:g}s: {terminal.latest()}")
    return 1000 * (record["t"] - written_at), record


def window_keys(terminal: ConsoleTerminal, presses: int, rng: random.Random) -> tuple[KeyLog, list[float]]:
    """Window keys: latency to the frame showing the new window's title, and to the one with its data."""
    log, data_ms = KeyLog(), []
    order = ["2", "3", "4", "1", "w"]
    for index in range(presses):
        time.sleep(rng.uniform(*GAP_S))
        before = (terminal.latest() or {}).get("history") or {"minutes": 15, "loads": 0}
        key = order[index % len(order)]
        cycle = list(WINDOW_KEYS.values())
        want = WINDOW_KEYS.get(key) or cycle[(cycle.index(before["minutes"]) + 1) % len(cycle)]
        if want == before["minutes"]:
            continue
        written_at = terminal.press(key)
        shown = terminal.wait_for(
            lambda r, want=want: (r.get("history") or {}).get("minutes") == want, written_at, KEY_TIMEOUT_S
        )
        if shown is None:
            log.timeouts.append(key)
            continue
        log.latencies.append((key, 1000 * (shown["t"] - written_at)))
        loaded = terminal.wait_for(
            lambda r, n=before["loads"]: (r.get("history") or {}).get("loads", 0) > n, written_at, KEY_TIMEOUT_S
        )
        if loaded is not None:
            data_ms.append(1000 * (loaded["t"] - written_at))
    return log, data_ms


def route_ms(daemon: CorralDaemon, path: str) -> dict[str, Any]:
    timings = []
    with daemon.admin() as admin:
        for _ in range(ROUTE_CALLS):
            started = time.perf_counter()
            admin.get(path).raise_for_status()
            timings.append(1000 * (time.perf_counter() - started))
    timings.sort()
    return {"calls": len(timings), "p50_ms": round(percentile(timings, 0.5) or 0, 2), "max_ms": round(timings[-1], 2)}


def measure(workdir: Path, idle_s: float, keys: int) -> dict[str, Any]:
    rng = random.Random(16)
    stub = ensure_nvml_stub()
    sleepers = [subprocess.Popen(["sleep", "3600"], preexec_fn=die_with_parent) for _ in range(2)]
    terminal: ConsoleTerminal | None = None
    devices_file = write_devices(workdir / "gpus.json", gpu_devices(GPUS, [child.pid for child in sleepers]))
    base = {key: value for key, value in os.environ.items() if key != "LD_LIBRARY_PATH"}
    daemon = HourOldDaemon(workdir / "corral", extra_env=stub.environment(devices_file, base))
    try:
        daemon.start()
        assert daemon.process is not None
        core_pid = daemon.process.pid
        result: dict[str, Any] = {
            "gpus": GPUS,
            "load_average": " / ".join(f"{load:.2f}" for load in os.getloadavg()),
            "route_gpu_history_60min_120pts": route_ms(daemon, "/gpus/history?minutes=60&points=120"),
            "route_gpu_processes": route_ms(daemon, "/gpus/processes"),
        }
        terminal = HistoryTerminal(daemon.socket_path, daemon.data_dir, workdir, (120, 40))
        terminal.start()
        first = terminal.wait_for(lambda record: True, 0.0, FIRST_FRAME_TIMEOUT_S)
        loaded = terminal.wait_for(lambda r: (r.get("rows") or {}).get("gpus", 0) >= GPUS, 0.0, FIRST_FRAME_TIMEOUT_S)
        if first is None or loaded is None:
            raise RuntimeError(f"the console showed no GPUs within {FIRST_FRAME_TIMEOUT_S:g}s: {terminal.latest()}")
        result["first_frame_s"] = round(first["t"] - terminal.spawned_at, 3)
        focus(terminal, "gpus-table", "tab")
        open_ms, _ = press_until(terminal, "H", lambda r: (r.get("history") or {}).get("loads", 0) >= 1)
        result["history_open_ms"] = round(open_ms, 1)
        _, shown = press_until(terminal, "4", lambda r: (r.get("history") or {}).get("minutes") == 60)
        drawn = (shown.get("history") or {}).get("loads", 0)  # the hour's answer drawn, then idle
        terminal.wait_for(lambda r: (r.get("history") or {}).get("loads", 0) > drawn, 0.0, KEY_TIMEOUT_S)
        result["idle_history_60min"] = idle(terminal, core_pid, idle_s)
        press_until(terminal, "1", lambda r: (r.get("history") or {}).get("minutes") == 1)
        result["idle_history_1min"] = idle(terminal, core_pid, idle_s)
        log, data_ms = window_keys(terminal, keys, rng)
        data_ms.sort()
        result["window_keys_ms"] = latency_summary(log) | {
            "to_data_p50": round(percentile(data_ms, 0.5) or 0, 1),
            "to_data_p99": round(percentile(data_ms, 0.99) or 0, 1),
        }
        press_until(terminal, "\x1b", lambda r: r.get("screen") == "DashboardScreen")
        focus(terminal, "gpus-table", "tab")  # focus comes back a frame or two after the screen does
        open_ms, _ = press_until(terminal, "t", lambda r: (r.get("processes") or {}).get("loads", 0) >= 1)
        result["processes_open_ms"] = round(open_ms, 1)
        result["processes_rows"] = ((terminal.latest() or {}).get("processes") or {}).get("rows")
        result["idle_processes"] = idle(terminal, core_pid, idle_s)
        cursor = KeyLog()
        for index in range(keys):
            time.sleep(rng.uniform(*GAP_S))
            press(terminal, "down" if index % 2 == 0 else "up", cursor)
        result["processes_keys_ms"] = latency_summary(cursor)
        return result
    finally:
        if terminal is not None:
            terminal.stop()
        daemon.stop()
        for child in sleepers:
            child.kill()
            child.wait()


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The console's targets over this scenario: the worst idle window and the worst key's p99."""
    idle_pct = max(result[name]["console_cpu_pct"] for name in IDLE_WINDOWS)
    p99 = max(result[name]["p99"] or 0.0 for name in KEY_RUNS)
    return {
        "first_frame_s": {"value": result["first_frame_s"], "target": 1.0, "ok": result["first_frame_s"] < 1.0},
        "idle_cpu_pct": {"value": idle_pct, "target": 10.0, "ok": idle_pct < 10.0},
        "keypress_p99_ms": {"value": p99, "target": 100.0, "ok": p99 < 100.0},
    }


def run(smoke: bool = False) -> dict[str, Any]:
    """The scenario in a temporary directory: what `python -m bench` calls."""
    idle_s, keys = (2.0, 6) if smoke else (10.0, 30)
    with tempfile.TemporaryDirectory(prefix="corral-bench-gpu-history-") as workdir:
        result = measure(Path(workdir), idle_s, keys)
    return result | {"targets": targets(result)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        raise SystemExit(serve(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="2 s idle windows and 6 keys, for a quick look")
    args = parser.parse_args()
    print(json.dumps(run(args.smoke), indent=2))


if __name__ == "__main__":
    main()
