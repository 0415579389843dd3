"""The scenarios: each runs direct and through Corral in alternating short rounds, so drift hits both alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.load import LoadWorker, round_spec
from bench.processes import Endpoints, cpu_seconds, memory_kib
from bench.stats import overhead, summarize

PROMPT = [{"role": "user", "content": "Say something."}]
MAX_ERROR_RATE = 0.01


@dataclass(frozen=True)
class Plan:
    name: str
    chat_concurrency: tuple[int, ...]
    stream_concurrency: tuple[int, ...]
    null_concurrency: tuple[int, ...]
    rounds: int  # per scenario and side; sides alternate round by round
    round_requests: int  # bound per round on llama-server scenarios
    null_round_requests: int  # bound per round on null-upstream scenarios
    round_s: float  # time bound per round
    soak_requests: int
    soak_concurrency: int
    soak_chunks: int  # RSS is sampled between chunks
    llama_servers: int = 2
    max_tokens: int = 8
    profile: bool = False  # profile corral-core with py-spy where a target is missed
    jobs_plan: str = "full"  # bench/jobs_queue.py's JOBS_PLANS


PLANS = {
    "full": Plan(
        "full",
        chat_concurrency=(1, 8, 32, 128),
        stream_concurrency=(1, 8, 32),
        null_concurrency=(1, 8, 32, 64, 128, 256),
        rounds=4,
        round_requests=2000,
        null_round_requests=6000,
        round_s=3.0,
        soak_requests=100_000,
        soak_concurrency=16,
        soak_chunks=10,
        profile=True,
    ),
    "quick": Plan(
        "quick",
        chat_concurrency=(1, 8, 32, 128),
        stream_concurrency=(1, 8, 32),
        null_concurrency=(1, 8, 32, 128),  # c=1: what the gateway's per-request work adds, with nothing queued
        rounds=2,
        round_requests=500,
        null_round_requests=2000,
        round_s=1.5,
        soak_requests=5_000,
        soak_concurrency=16,
        soak_chunks=5,
        jobs_plan="quick",
    ),
    # Two llama-servers, as in full: with one, an upstream connection llama-server closed after a stream can reach
    # the client as a 503 (no other provider to fail over to); see bench/README.md.
    "smoke": Plan(
        "smoke",
        chat_concurrency=(1, 4),
        stream_concurrency=(1, 4),
        null_concurrency=(1, 4),
        rounds=2,
        round_requests=12,
        null_round_requests=50,
        round_s=3.0,
        soak_requests=200,
        soak_concurrency=4,
        soak_chunks=2,
        jobs_plan="smoke",
    ),
}


class Runner:
    def __init__(
        self,
        worker: LoadWorker,
        endpoints: Endpoints,
        gateway_pid: int,
        plan: Plan,
        upstream_errors: Callable[[], int],
        log: Callable[[str], None] = print,
    ) -> None:
        self.worker = worker
        self.upstream_errors = upstream_errors
        self.endpoints = endpoints
        self.pid = gateway_pid
        self.plan = plan
        self.log = log

    def _spec(
        self, side: str, model: str, stream: bool, concurrency: int, count: int, duration_s: float
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": PROMPT,
            "max_tokens": self.plan.max_tokens,
            "stream": stream,
        }
        if model == "tiny":
            # Exactly max_tokens, deterministically: equal work on both sides, and the same first content chunk.
            body.update(ignore_eos=True, temperature=0)
        if side == "gateway":
            return round_spec(
                [self.endpoints.gateway],
                body,
                concurrency=concurrency,
                count=count,
                duration_s=duration_s,
                headers={"Authorization": f"Bearer {self.endpoints.key}"},
            )
        direct = self.endpoints.llama if model == "tiny" else [self.endpoints.null]
        return round_spec(direct, body, concurrency=concurrency, count=count, duration_s=duration_s)

    def _round(self, spec: dict[str, Any]) -> dict[str, Any]:
        before = cpu_seconds(self.pid)
        result = self.worker.run(spec)
        result["corral_cpu_s"] = cpu_seconds(self.pid) - before
        return result

    def pair(self, model: str, concurrency: int, stream: bool) -> dict[str, Any]:
        """Warm both sides up, then `rounds` rounds per side, alternating which side goes first."""
        count = self.plan.round_requests if model == "tiny" else self.plan.null_round_requests
        for side in ("direct", "gateway"):
            self._round(self._spec(side, model, stream, concurrency, max(2 * concurrency, 8), self.plan.round_s))
        rounds: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        upstream_errors_before = self.upstream_errors()
        for index in range(self.plan.rounds):
            order = ("direct", "gateway") if index % 2 == 0 else ("gateway", "direct")
            for side in order:
                rounds[side].append(self._round(self._spec(side, model, stream, concurrency, count, self.plan.round_s)))
        direct, gateway = summarize(rounds["direct"], stream), summarize(rounds["gateway"], stream)
        result = {
            "concurrency": concurrency,
            "direct": direct,
            "gateway": gateway,
            "overhead": overhead(direct, gateway),
            "corral_memory_kib": memory_kib(self.pid),
            # Failed upstream attempts inside corral-core, including those it hid from clients by failing over.
            "corral_upstream_errors": self.upstream_errors() - upstream_errors_before,
        }
        self.log(
            f"  c={concurrency:<4} direct {direct['rps']:>8.1f} req/s p50 {direct['latency_ms']['p50']} ms | "
            f"gateway {gateway['rps']:>8.1f} req/s p50 {gateway['latency_ms']['p50']} ms | "
            f"errors {direct['errors']}/{gateway['errors']}"
        )
        return result

    def chat(self) -> list[dict[str, Any]]:
        self.log(f"non-streaming chat, llama-server x{self.plan.llama_servers}, max_tokens {self.plan.max_tokens}")
        return [self.pair("tiny", c, stream=False) for c in self.plan.chat_concurrency]

    def stream(self) -> list[dict[str, Any]]:
        self.log("streaming chat, llama-server")
        return [self.pair("tiny", c, stream=True) for c in self.plan.stream_concurrency]

    def null_sweep(self) -> dict[str, Any]:
        """Rising concurrency against the null upstream; the best rate with < 1% errors per side."""
        self.log("null upstream, rising concurrency")
        levels = [self.pair("null", c, stream=False) for c in self.plan.null_concurrency]
        best: dict[str, Any] = {}
        for side in ("direct", "gateway"):
            sustained = [level for level in levels if level[side]["error_rate"] < MAX_ERROR_RATE]
            top = max(sustained, key=lambda level: level[side]["rps"], default=None)
            best[side] = {"rps": top[side]["rps"], "concurrency": top["concurrency"]} if top else None
        return {"levels": levels, "max_sustained": best}

    def soak(self) -> dict[str, Any]:
        """`soak_requests` through the gateway to the null upstream, RSS sampled between chunks."""
        plan = self.plan
        self.log(f"soak: {plan.soak_requests} requests, gateway to the null upstream, c={plan.soak_concurrency}")
        chunk = plan.soak_requests // plan.soak_chunks
        samples = [{"requests": 0, **memory_kib(self.pid)}]
        rounds = []
        done = 0
        upstream_errors_before = self.upstream_errors()
        for _ in range(plan.soak_chunks):
            # Bounded in time too: 60 s per chunk is over 10x what the gateway needs at its slowest seen rate.
            spec = self._spec("gateway", "null", False, plan.soak_concurrency, chunk, 60.0)
            rounds.append(self._round(spec))
            done += rounds[-1]["ok"] + rounds[-1]["errors"]
            samples.append({"requests": done, **memory_kib(self.pid)})
        summary = summarize(rounds, stream=False)
        start, middle, end = samples[0]["VmRSS"], samples[len(samples) // 2]["VmRSS"], samples[-1]["VmRSS"]
        # Flat: the second half adds under 1% and the whole soak under 5% (allocator warm-up is allowed for).
        flat = end - middle <= 0.01 * start and end - start <= 0.05 * start
        self.log(f"  {summary['rps']} req/s, errors {summary['errors']}, RSS {start} -> {end} KiB")
        return {
            "concurrency": plan.soak_concurrency,
            "gateway": summary,
            "rss_kib_start": start,
            "rss_kib_end": end,
            "rss_growth_kib": end - start,
            "rss_growth_second_half_kib": end - middle,
            "rss_flat": flat,
            "peak_rss_kib": samples[-1]["VmHWM"],
            "samples": samples,
            "corral_upstream_errors": self.upstream_errors() - upstream_errors_before,
        }


def plan_dict(plan: Plan) -> dict[str, Any]:
    return asdict(plan)
