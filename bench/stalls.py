"""Stalled connections: what 3,000 clients that stop mid-request cost a normal client, and when they are closed.

corral-core runs with short deadlines (`--header-timeout 5 --body-timeout 8`, so the scenario takes seconds)
against the null upstream. One normal client (the load generator, c=1) measures its latency while the gateway is
idle; then a holding process (`python -m bench.stalls`, its own RLIMIT_NOFILE raised) opens the stalled connections,
half sending partial headers and half a body shorter than its Content-Length, and the normal client measures again
while they are all open. The holding process notes when each connection was closed and with what, against the
deadline that applies to it: headers from the connection's start, the body from the end of its headers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.load import LoadWorker, round_spec
from bench.processes import NullUpstream, cpu_seconds, memory_kib
from bench.stats import percentile, summarize
from tests.testbed import CorralDaemon
from tests.testbed.child_processes import die_with_parent, stop_process

OPEN_BATCH = 250  # connections opened at once by the holding process
GRACE_S = 2.0  # a stalled connection still open this long after its deadline counts as left open
SLOW_CONNECT_S = 0.5  # a connect this slow had its SYN retried (1 s later): the accept queue was full
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StallPlan:
    name: str
    stalled: int  # half partial headers, half short bodies
    header_timeout_s: float
    body_timeout_s: float
    round_requests: int  # the normal client's bound per round (and round_s in time)
    round_s: float


STALL_PLANS = {
    "stalls": StallPlan("stalls", stalled=3000, header_timeout_s=5, body_timeout_s=8, round_requests=4000, round_s=2),
    "stalls-smoke": StallPlan(
        "stalls-smoke", stalled=100, header_timeout_s=2, body_timeout_s=3, round_requests=300, round_s=0.5
    ),
}


# -- the driver --------------------------------------------------------------------------------------------


def measure(plan: StallPlan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-stalls-") as workdir, contextlib.ExitStack() as stack:
        null = NullUpstream(Path(workdir) / "null-upstream.log").start()
        stack.callback(null.stop)
        flags = ("--header-timeout", f"{plan.header_timeout_s:g}", "--body-timeout", f"{plan.body_timeout_s:g}")
        daemon = CorralDaemon(Path(workdir) / "corral", extra_args=flags, preexec=die_with_parent)
        stack.callback(daemon.stop)
        daemon.start()
        daemon.add_provider("null", null.base_url)
        key = daemon.create_key("bench")
        _wait_ready(daemon)
        assert daemon.process is not None
        worker = LoadWorker()
        stack.callback(worker.close)
        return _scenario(plan, daemon, daemon.process.pid, key, worker)


def _wait_ready(daemon: CorralDaemon) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        providers = daemon.admin_call("GET", "/providers").json()
        if providers and all(p["state"] == "ready" and p["models"] for p in providers):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the null upstream was not ready in 30 s:\n{daemon.log_tail()}")


def _scenario(plan: StallPlan, daemon: CorralDaemon, pid: int, key: str, worker: LoadWorker) -> dict[str, Any]:
    endpoint = ("127.0.0.1", daemon.port)
    body = {"model": "null", "messages": [{"role": "user", "content": "Say something."}], "max_tokens": 8}

    def normal_round(requests: int, duration_s: float) -> dict[str, Any]:
        spec = round_spec(
            [endpoint],
            body,
            concurrency=1,
            count=requests,
            duration_s=duration_s,
            headers={"Authorization": f"Bearer {key}"},
        )
        before = cpu_seconds(pid)
        result = worker.run(spec)
        result["corral_cpu_s"] = cpu_seconds(pid) - before
        return result

    normal_round(200, 1.0)  # warm-up
    idle = normal_round(plan.round_requests, plan.round_s)
    rss_idle = memory_kib(pid)["VmRSS"]
    holder = subprocess.Popen(
        [sys.executable, "-m", "bench.stalls", *_holder_args(plan, daemon.port, key)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    try:
        ready = _line(holder, READY_TIMEOUT_S)
        rss_stalled = memory_kib(pid)["VmRSS"]
        # Ends before the first stalled connection's header deadline: all of them are open throughout.
        window_s = min(plan.round_s, plan.header_timeout_s - (time.monotonic() - ready["first_opened"]) - 0.5)
        stalled = normal_round(plan.round_requests, max(window_s, 0.2))
        stalled_round_end = time.monotonic()
        closes = _line(holder, plan.body_timeout_s + GRACE_S + 30)
    finally:
        stop_process(holder)
        if holder.stdout is not None:
            holder.stdout.close()
    after = normal_round(plan.round_requests, plan.round_s)
    log = daemon.log_tail(10_000)
    return {
        "plan": asdict(plan),
        "normal_client": {
            "idle": summarize([idle], stream=False),
            "stalled": summarize([stalled], stream=False),
            "after": summarize([after], stream=False),
        },
        "corral_rss_kib": {"idle": rss_idle, "stalled": rss_stalled},
        "opened": ready["opened"],
        "open_failures": ready["failures"],
        "slow_connects": sum(1 for c in closes["connections"] if c["slow_connect"]),
        "closed_during_normal_round": sum(1 for c in closes["connections"] if 0 < c["closed_at"] < stalled_round_end),
        "by_kind": {kind: _closed_summary(closes["connections"], kind, plan) for kind in ("headers", "body")},
        "daemon_log_tracebacks": log.count("Traceback"),
    }


def _holder_args(plan: StallPlan, port: int, key: str) -> list[str]:
    return [
        *("--port", str(port), "--key", key, "--count", str(plan.stalled)),
        *("--header-timeout", str(plan.header_timeout_s), "--body-timeout", str(plan.body_timeout_s)),
    ]


def _line(process: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline() if ready else b""
    if not line:
        raise RuntimeError(f"the stalled-connection holder said nothing within {timeout_s:.0f} s")
    result: dict[str, Any] = orjson.loads(line)
    return result


def _closed_summary(connections: list[dict[str, Any]], kind: str, plan: StallPlan) -> dict[str, Any]:
    mine = [c for c in connections if c["kind"] == kind]
    deadline = plan.header_timeout_s if kind == "headers" else plan.body_timeout_s
    closed = sorted(c["closed_after_s"] for c in mine if c["closed_after_s"] is not None)

    def at(fraction: float) -> float | None:
        value = percentile(closed, fraction)
        return None if value is None else round(value, 3)

    return {
        "count": len(mine),
        "deadline_s": deadline,
        "closed": len(closed),
        "closed_with_408_json": sum(1 for c in mine if c["status"] == 408 and c["code"] == "request_timeout"),
        "answers": _tally(f"{c['status']} {c['code']}" for c in mine),
        "closed_after_s": {"min": at(0), "p50": at(0.5), "p99": at(0.99), "max": at(1)},
        "open_after_deadline_plus_grace": sum(
            1 for c in mine if c["closed_after_s"] is None or c["closed_after_s"] > deadline + GRACE_S
        ),
    }


def _tally(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def targets(stalls: dict[str, Any]) -> list[dict[str, Any]]:
    normal = stalls["normal_client"]
    idle, stalled = normal["idle"]["latency_ms"]["p50"], normal["stalled"]["latency_ms"]["p50"]
    kinds = stalls["by_kind"].values()
    count = sum(kind["count"] for kind in kinds)
    with_408 = sum(kind["closed_with_408_json"] for kind in kinds)
    left_open = sum(kind["open_after_deadline_plus_grace"] for kind in kinds)
    return [
        {
            "target": f"normal client's p50 within 2x of idle while {count:,} stalled connections are open",
            "measured": f"{idle:.3f} -> {stalled:.3f} ms (x{stalled / idle:.2f})" if idle and stalled else None,
            "met": None if not (idle and stalled) else stalled <= 2 * idle,
        },
        {
            "target": f"every stalled connection closed with a JSON 408 ({count:,})",
            "measured": f"{with_408:,} of {count:,}",
            "met": with_408 == count,
        },
        {
            "target": f"no stalled connection still open {GRACE_S:g} s after its deadline",
            "measured": f"{left_open} still open",
            "met": left_open == 0,
        },
    ]


def markdown(stalls: dict[str, Any]) -> list[str]:
    plan, normal = stalls["plan"], stalls["normal_client"]
    lines = [
        "",
        f"## Stalled connections ({plan['name']} plan)",
        "",
        f"corral-core `--header-timeout {plan['header_timeout_s']:g} --body-timeout {plan['body_timeout_s']:g}`, "
        f"null upstream; {stalls['opened']:,} stalled connections opened ({stalls['open_failures']} failed to open, "
        f"{stalls['slow_connects']} had a SYN retried with the accept queue full), "
        f"{stalls['closed_during_normal_round']} closed while the normal client measured. corral-core RSS "
        f"{stalls['corral_rss_kib']['idle'] / 1024:.1f} MiB idle, {stalls['corral_rss_kib']['stalled'] / 1024:.1f} "
        f"MiB with them open; tracebacks in its log: {stalls['daemon_log_tracebacks']}.",
        "",
        "| normal client (c=1) | requests | errors | req/s | p50 ms | p99 ms | corral CPU ms/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("idle", "stalled", "after"):
        s = normal[name]
        lines.append(
            f"| {name} | {s['requests']} | {s['errors']} | {s['rps']:.0f} | {s['latency_ms']['p50']:.3f} "
            f"| {s['latency_ms']['p99']:.3f} | {s['corral_cpu_ms_per_request'] or 0:.2f} |"
        )
    lines += [
        "",
        "| stalled in | count | deadline s | closed | JSON 408 | closed after s: min / p50 / p99 / max | "
        f"open at deadline + {GRACE_S:g} s |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, row in stalls["by_kind"].items():
        after = row["closed_after_s"]
        spread = " / ".join(
            "-" if after[name] is None else f"{after[name]:.3f}" for name in ("min", "p50", "p99", "max")
        )
        lines.append(
            f"| {kind} | {row['count']} | {row['deadline_s']:g} | {row['closed']} | {row['closed_with_408_json']} "
            f"| {spread} | {row['open_after_deadline_plus_grace']} |"
        )
    return lines


# -- the holding process (python -m bench.stalls) ----------------------------------------------------------


class _Closings:
    """Counts the stalled connections still open; `all_closed` is set when none is."""

    def __init__(self, count: int) -> None:
        self.open = count
        self.all_closed = asyncio.Event()

    def one_closed(self) -> None:
        self.open -= 1
        if self.open <= 0:
            self.all_closed.set()


@dataclass
class _Stalled(asyncio.Protocol):
    """One stalled connection: sends its part of a request, then notes what came back and when it closed."""

    kind: str
    payload: bytes
    closings: _Closings
    opened_at: float = 0.0  # when its connect began
    connected_at: float = 0.0
    sent_at: float = 0.0
    closed_at: float = 0.0
    received: bytearray = field(default_factory=bytearray)
    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connected_at = time.monotonic()
        transport.write(self.payload)  # type: ignore[attr-defined]
        self.sent_at = time.monotonic()

    def data_received(self, data: bytes) -> None:
        if len(self.received) < 4096:
            self.received += data

    def eof_received(self) -> None:
        self._closed()  # the server's FIN: it has closed its side

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    def _closed(self) -> None:
        if not self.closed_at:
            self.closed_at = time.monotonic()
            self.closings.one_closed()

    def answer(self) -> tuple[int | None, str | None]:
        head, _, body = bytes(self.received).partition(b"\r\n\r\n")
        if not head:
            return None, None
        status = int(head.split(b" ", 2)[1])
        try:
            code = orjson.loads(body)["error"]["code"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            code = None
        return status, code


def _payloads(port: int, key: str) -> dict[str, bytes]:
    start = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n" % (
        port,
        key.encode(),
    )
    return {
        "headers": start + b"Content-Type: appl",
        "body": start + b'Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{"model": "null", "messages": [',
    }


async def _hold(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    payloads = _payloads(args.port, args.key)
    kinds = ["headers" if index % 2 == 0 else "body" for index in range(args.count)]
    stalled: list[_Stalled] = []
    failures = 0
    closings = _Closings(args.count)
    for first in range(0, args.count, OPEN_BATCH):
        batch = [_Stalled(kind, payloads[kind], closings) for kind in kinds[first : first + OPEN_BATCH]]
        for c in batch:  # the connection's start is when its connect began: the server's clock starts later
            c.opened_at = time.monotonic()
        opened = await asyncio.gather(
            *(loop.create_connection(lambda c=c: c, "127.0.0.1", args.port) for c in batch), return_exceptions=True
        )
        failed = sum(1 for result in opened if isinstance(result, BaseException))
        failures += failed
        closings.open -= failed
        stalled += [c for c, result in zip(batch, opened, strict=True) if not isinstance(result, BaseException)]
    first_opened = min((c.opened_at for c in stalled), default=time.monotonic())
    _say({"opened": len(stalled), "failures": failures, "first_opened": first_opened})
    # Until each is closed, or every deadline plus the grace has passed.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(closings.all_closed.wait(), max(args.header_timeout, args.body_timeout) + GRACE_S + 1)
    connections = []
    for c in stalled:
        status, code = c.answer()
        slow_connect = c.connected_at - c.opened_at > SLOW_CONNECT_S
        # Headers count from the connection's start: its connect, or the retried SYN's answer when it was retried.
        start = c.sent_at if c.kind == "body" else c.connected_at if slow_connect else c.opened_at
        connections.append(
            {
                "kind": c.kind,
                "slow_connect": slow_connect,
                "status": status,
                "code": code,
                "closed_at": c.closed_at,
                "closed_after_s": round(c.closed_at - start, 4) if c.closed_at else None,
            }
        )
        if c.transport is not None:
            c.transport.close()
    return {"connections": connections}


def _say(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


def _raise_open_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        raise SystemExit(f"bench.stalls needs {needed} open files; the hard limit is {hard}: raise it (ulimit -Hn)")


def holder_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stalls", description="hold stalled connections")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--header-timeout", type=float, required=True)
    parser.add_argument("--body-timeout", type=float, required=True)
    args = parser.parse_args(argv)
    _raise_open_file_limit(args.count + 64)
    _say(uvloop.run(_hold(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(holder_main())
