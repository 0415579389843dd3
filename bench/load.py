"""The load generator: closed-loop at a fixed concurrency, bounded by request count and by time.

It runs in its own process (`python -m bench.load`), so it never shares a GIL with the gateway or the null upstream.
The driver talks to it with one JSON line per round on stdin and gets one JSON line back on stdout
(`LoadWorker.run`). Each result carries the generator's own CPU time, so a report can show it was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import orjson
import uvloop

from bench.http1 import Connection, StaleConnection, build_request
from tests.testbed.child_processes import die_with_parent

MAX_ERROR_SAMPLES = 5


def round_spec(
    endpoints: list[tuple[str, int]],
    body: dict[str, Any],
    *,
    concurrency: int,
    count: int,
    duration_s: float,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
    timeout_s: float = 30.0,
    queued: bool = False,
) -> dict[str, Any]:
    """One round: `count` requests (at most `duration_s`) from `concurrency` connections spread over endpoints."""
    return {
        "endpoints": endpoints,
        "body": body,
        "concurrency": concurrency,
        "count": count,
        "duration_s": duration_s,
        "headers": headers or {},
        "path": path,
        "timeout_s": timeout_s,
        "queued": queued,  # job submissions: a 202 naming the job is the success
    }


async def run_round(spec: dict[str, Any]) -> dict[str, Any]:
    endpoints = [tuple(endpoint) for endpoint in spec["endpoints"]]
    stream = spec["body"].get("stream") is True
    body = orjson.dumps(spec["body"])
    raws = {ep: build_request(ep[0], ep[1], spec["path"], spec["headers"], body) for ep in endpoints}
    concurrency, timeout_s = int(spec["concurrency"]), float(spec["timeout_s"])
    queued = bool(spec.get("queued", False))
    latencies: list[float] = []
    ttfts: list[float] = []
    errors: Counter[str] = Counter()
    remaining = int(spec["count"])
    reconnects = 0

    async def connect(endpoint: tuple[str, int]) -> tuple[Connection, float]:
        opened_at = time.perf_counter()
        conn = await Connection.open(*endpoint)
        return conn, time.perf_counter() - opened_at

    async def client(endpoint: tuple[str, int], conn: Connection | None) -> None:
        nonlocal remaining, reconnects
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            connect_s = 0.0  # a connection opened for this request counts in its latency, as it would for any client
            try:
                async with asyncio.timeout(timeout_s):
                    if conn is None or conn.closed:
                        conn, connect_s = await connect(endpoint)
                    try:
                        result = await conn.request(raws[endpoint], stream, queued=queued)
                    except StaleConnection:
                        # llama-server closes a keep-alive connection after each stream; clients then reconnect.
                        reconnects += 1
                        conn, connect_s = await connect(endpoint)
                        result = await conn.request(raws[endpoint], stream, queued=queued)
            except Exception as error:  # every failure is a counted error, never a crash
                errors[f"{type(error).__name__}: {str(error)[:160]}"] += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            latencies.append((result.latency_s + connect_s) * 1000)
            if result.ttft_s is not None:
                ttfts.append((result.ttft_s + connect_s) * 1000)
            elif stream:
                errors["stream had no content chunk"] += 1
        if conn is not None:
            conn.close()

    plan = [endpoints[index % len(endpoints)] for index in range(concurrency)]
    # Connections are opened before the clock starts: the round measures requests, not TCP handshakes.
    opened = await asyncio.gather(*(Connection.open(*endpoint) for endpoint in plan), return_exceptions=True)
    conns = [conn if isinstance(conn, Connection) else None for conn in opened]
    cpu0, start = time.process_time(), time.perf_counter()
    deadline = start + float(spec["duration_s"])
    await asyncio.gather(*(client(endpoint, conn) for endpoint, conn in zip(plan, conns, strict=True)))
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu0
    await asyncio.sleep(0)  # let the transports finish closing
    return {
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_samples": dict(errors.most_common(MAX_ERROR_SAMPLES)),
        "latency_ms": latencies,
        "ttft_ms": ttfts,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "reconnects": reconnects,
    }


def worker_main() -> int:
    """Serve rounds from stdin until it closes."""
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        result = uvloop.run(run_round(orjson.loads(line)))
        sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
        sys.stdout.buffer.flush()
    return 0


class LoadWorker:
    """The driver's handle on a generator process; a round that overruns its bound kills the worker."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(orjson.dumps(spec) + b"\n")
        self.process.stdin.flush()
        limit_s = float(spec["duration_s"]) + float(spec["timeout_s"]) + 30.0
        ready, _, _ = select.select([self.process.stdout], [], [], limit_s)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            self.close()
            raise RuntimeError(f"load worker gave no result within {limit_s:.0f}s (exit {self.process.returncode})")
        return orjson.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


if __name__ == "__main__":
    raise SystemExit(worker_main())
