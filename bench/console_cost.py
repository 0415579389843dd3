"""What the console costs: the real console on a terminal, against a busy corral-core.

It starts the synthetic state (`bench.console_state`), then the console (`bench.console_terminal`), and measures:
time to the first frame and to the first frame that shows all the data; CPU over an idle window while the state
still moves at 1 Hz; keypress latency over a tour of the dashboard; the console's CPU and keypress latency while
the gateway also serves as many short requests as a load generator can send; and keypress latency while a chat
answer streams at 10,000 tokens per second, with the token rate the console saw.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.console_keys import KeyLog, stream_chat, tour_dashboard
from bench.console_state import FAST_MODEL, FAST_RATE, TRICKLE_MODEL, Scale, SyntheticState
from bench.console_terminal import ConsoleTerminal, Record
from bench.load import LoadWorker, round_spec
from bench.processes import cpu_seconds
from bench.stats import percentile

FIRST_FRAME_TIMEOUT_S = 30.0
SETTLE_S = 2.0  # after the data shows, before the idle window: the first redraws and table sorts are done
SEED = 6


@dataclass(frozen=True)
class ConsolePlan:
    name: str
    scale: Scale
    idle_s: float
    dashboard_keys: int
    stream_tokens: tuple[int, ...]  # lengths of the fast chat answers, at FAST_RATE tokens a second
    stream_keys: int  # most keys typed while each streams
    busy_s: float = 0.0  # how long the gateway also serves short requests flat out (0: not measured)
    busy_keys: int = 0  # keys typed on the dashboard meanwhile
    size: tuple[int, int] = (120, 40)


CONSOLE_PLANS = {
    "console": ConsolePlan(
        "console",
        Scale(),
        idle_s=20.0,
        dashboard_keys=96,
        stream_tokens=(10_000, 50_000),
        stream_keys=40,
        busy_s=15.0,
        busy_keys=36,
    ),
    "console-smoke": ConsolePlan(
        "console-smoke",
        Scale(gpus=2, deployments=1, providers=3, keys=10, live_requests=20, stream_s=10),
        idle_s=2.0,
        dashboard_keys=12,
        stream_tokens=(5_000,),
        stream_keys=3,
        busy_s=2.0,
        busy_keys=4,
    ),
}


def latency_summary(log: KeyLog) -> dict[str, Any]:
    values = sorted(ms for _, ms in log.latencies)
    by_key: dict[str, list[float]] = {}
    for key, ms in log.latencies:
        by_key.setdefault(key, []).append(ms)

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "count": len(values),
        "timeouts": len(log.timeouts),
        "p50": rounded(percentile(values, 0.5)),
        "p99": rounded(percentile(values, 0.99)),
        "max": rounded(values[-1] if values else None),
        "by_key": {
            key: {"count": len(ms), "p50": rounded(percentile(sorted(ms), 0.5)), "max": rounded(max(ms))}
            for key, ms in sorted(by_key.items())
        },
    }


def shows_everything(produced: dict[str, Any]) -> Any:
    """A frame of the dashboard with every GPU, deployment, provider and key, and nearly every live request."""

    def check(record: Record) -> bool:
        rows = record.get("rows")
        return bool(rows) and (
            rows["gpus"] >= produced["gpus"]
            and rows["fleet"] >= produced["deployments"]
            and rows["providers"] >= produced["providers"]
            and rows["keys"] >= produced["keys"]
            and rows["requests"] >= int(0.9 * produced["scale"]["live_requests"])
        )

    return check


def idle_window(terminal: ConsoleTerminal, state: SyntheticState, seconds: float) -> dict[str, Any]:
    """The console's CPU while nobody types, with the state still moving; corral-core's alongside."""
    assert state.daemon.process is not None
    core_pid = state.daemon.process.pid
    console_before, core_before, output_before = terminal.cpu_seconds(), cpu_seconds(core_pid), terminal.output_bytes
    started = time.monotonic()
    time.sleep(seconds)
    ended = time.monotonic()
    wall = ended - started
    return {
        "window_s": round(wall, 2),
        "cpu_pct": round(100 * (terminal.cpu_seconds() - console_before) / wall, 1),
        "frames_per_s": round(terminal.frames_between(started, ended) / wall, 1),
        "output_kib_per_s": round((terminal.output_bytes - output_before) / 1024 / wall, 1),
        "corral_core_cpu_pct": round(100 * (cpu_seconds(core_pid) - core_before) / wall, 1),
        "live_requests": state.live_requests(),
    }


def busy_gateway(
    terminal: ConsoleTerminal, state: SyntheticState, plan: ConsolePlan, rng: random.Random
) -> dict[str, Any]:
    """Short non-streamed requests through the gateway at the generator's full rate (32 connections, one key),
    on top of the live streams, while keys tour the dashboard: what a console on a busy gateway costs."""
    print(f"console: the gateway also serves short requests flat out for {plan.busy_s:g}s; {plan.busy_keys} keys")
    assert state.daemon.process is not None
    core_pid = state.daemon.process.pid
    spec = round_spec(
        [("127.0.0.1", state.daemon.port)],
        {"model": TRICKLE_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
        concurrency=32,
        count=10_000_000,
        duration_s=plan.busy_s,
        headers={"Authorization": f"Bearer {state.keys[0]}"},
    )
    worker = LoadWorker()
    outcome: dict[str, Any] = {}
    load = threading.Thread(target=lambda: outcome.update(worker.run(spec)), daemon=True)
    try:
        console_before, core_before, started = terminal.cpu_seconds(), cpu_seconds(core_pid), time.monotonic()
        load.start()
        log = tour_dashboard(terminal, plan.busy_keys, rng, going_on=load.is_alive)  # keys only under load
        load.join(plan.busy_s + 60)
        wall = time.monotonic() - started
    finally:
        worker.close()
    completed = int(outcome.get("ok", 0))
    return {
        "window_s": round(wall, 2),
        "requests": completed,
        "errors": int(outcome.get("errors", 0)),
        "error_samples": outcome.get("error_samples", {}),
        "requests_per_s": round(completed / max(float(outcome.get("wall_s") or plan.busy_s), 1e-9)),
        "console_cpu_pct": round(100 * (terminal.cpu_seconds() - console_before) / wall, 1),
        "corral_core_cpu_pct": round(100 * (cpu_seconds(core_pid) - core_before) / wall, 1),
        "keypress_ms": latency_summary(log),
    }


def chat_answer(terminal: ConsoleTerminal, tokens: int, typed_keys: int, rng: random.Random) -> dict[str, Any]:
    """One answer of `tokens` at FAST_RATE a second, typing into the prompt meanwhile."""
    print(f"console: chat answer of {tokens:,} tokens at {FAST_RATE:,}/s, typing meanwhile")
    cpu_before = terminal.cpu_seconds()
    streamed, finished, sent_at = stream_chat(terminal, tokens, typed_keys, rng, timeout_s=60 + 3 * tokens / FAST_RATE)
    wall = (finished["t"] if finished else time.monotonic()) - sent_at
    answer = (finished or {}).get("answer") or {}
    return {
        "model": FAST_MODEL,
        "target_tokens_per_s": FAST_RATE,
        "asked_tokens": tokens,
        "tokens": answer.get("tokens"),
        "tokens_per_s": None if answer.get("tokens_per_s") is None else round(answer["tokens_per_s"]),
        "first_token_s": answer.get("first_token_s"),
        "outcome": answer.get("outcome"),
        "answer_wall_s": round(wall, 2),
        "console_cpu_pct": round(100 * (terminal.cpu_seconds() - cpu_before) / wall, 1),
        "keypress_ms": latency_summary(streamed),
    }


def measure(plan: ConsolePlan, workdir: Path) -> dict[str, Any]:
    rng = random.Random(SEED)
    load_average = " / ".join(f"{load:.2f}" for load in os.getloadavg())  # other work on the box skews latency
    with SyntheticState(plan.scale, workdir) as state:
        produced = state.start()
        print(
            f"console: state up ({produced['live_requests_at_start']} live requests, "
            f"{produced['deployments']} deployments); starting the console"
        )
        terminal = ConsoleTerminal(state.socket_path, state.data_dir, workdir, plan.size)
        state.callback(terminal.stop)
        terminal.start()
        first = terminal.wait_for(lambda record: True, 0.0, FIRST_FRAME_TIMEOUT_S)
        loaded = terminal.wait_for(shows_everything(produced), 0.0, FIRST_FRAME_TIMEOUT_S)
        if first is None or loaded is None:
            tail = terminal.output_tail.decode(errors="replace")[-1500:]
            raise RuntimeError(
                f"the console showed no {'frame' if first is None else 'data'} within "
                f"{FIRST_FRAME_TIMEOUT_S:g}s; last frame {terminal.latest()}; terminal tail:\n{tail}"
            )
        time.sleep(SETTLE_S)
        print(f"console: idle for {plan.idle_s:g}s")
        idle = idle_window(terminal, state, plan.idle_s)
        print(f"console: {plan.dashboard_keys} keys on the dashboard")
        cpu_before, keys_started = terminal.cpu_seconds(), time.monotonic()
        dashboard = tour_dashboard(terminal, plan.dashboard_keys, rng)
        keys_cpu_pct = 100 * (terminal.cpu_seconds() - cpu_before) / (time.monotonic() - keys_started)
        busy = busy_gateway(terminal, state, plan, rng) if plan.busy_s > 0 and state.keys else None
        streaming = [chat_answer(terminal, tokens, plan.stream_keys, rng) for tokens in plan.stream_tokens]
        traffic = state.traffic_counts()
    return {
        "plan": asdict(plan),
        "state": produced,
        "load_average": load_average,
        "terminal": {"columns": plan.size[0], "rows": plan.size[1], "driver": "Textual LinuxDriver on a pty"},
        "first_frame_s": round(first["t"] - terminal.spawned_at, 3),
        "first_data_frame_s": round(loaded["t"] - terminal.spawned_at, 3),
        "idle": idle,
        "keypress_ms": latency_summary(dashboard) | {"console_cpu_pct": round(keys_cpu_pct, 1)},
        "busy_gateway": busy,
        "streaming": streaming,
        "traffic": traffic,
    }
