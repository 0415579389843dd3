"""The job queue in the bench: durable admission, a job's cost through an empty queue, and a deep queue's drain.

Its own corral-core (a fresh data dir, so jobs.sqlite starts empty) in front of the stack's llama-servers:

- **Admission.** With every provider drained, jobs are accepted and stay queued: what is measured is the durable
  submit alone (validated, on disk before the 202), at `admission_concurrency` clients. Target: 1,000 jobs/s.
- **Drain.** The providers are undrained and the queue runs dry. The jobs ask for `drain_max_tokens` tokens, so a
  slot's work is mostly decoding. Two utilisations are sampled meanwhile at 20 Hz: the gateway's (each provider's
  requests in flight against its slots, `GET /providers`) and llama-server's own (`/slots`, `is_processing`), which
  leaves out the HTTP and tokenising time of each request.
- **Through an empty queue.** At one client, alternating: the same chat request synchronously, and as a job
  submitted then waited for (`GET /v1/queue/{id}/wait`), with the same HTTP client. Target: the job's p50 at most
  10 ms above the synchronous one.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.load import LoadWorker, round_spec
from bench.processes import cpu_seconds
from tests.testbed.daemon import CorralDaemon

PROMPT = [{"role": "user", "content": "Say something."}]
READY_TIMEOUT_S = 30.0
SLOT_SAMPLE_S = 0.05
FULL_PCT = 90  # "the slots kept full": the gateway holds at least this share of them, on average, while draining


@dataclass(frozen=True)
class JobsPlan:
    jobs: int  # submitted while drained, then drained through llama-server
    admission_concurrency: int
    latency_pairs: int  # synchronous and queued requests at one client, alternating
    drain_timeout_s: float
    baseline_requests: int  # the same requests sent synchronously, one client per slot
    drain_max_tokens: int = 64


JOBS_PLANS = {
    "full": JobsPlan(
        jobs=10_000, admission_concurrency=32, latency_pairs=200, drain_timeout_s=300.0, baseline_requests=2_000
    ),
    "quick": JobsPlan(
        jobs=2_000, admission_concurrency=32, latency_pairs=60, drain_timeout_s=120.0, baseline_requests=1_000
    ),
    "smoke": JobsPlan(
        jobs=60,
        admission_concurrency=4,
        latency_pairs=8,
        drain_timeout_s=60.0,
        baseline_requests=60,
        drain_max_tokens=8,
    ),
}


def measure(
    worker: LoadWorker, llama: list[tuple[str, int]], plan: JobsPlan, *, parallel: int, log: Any = print
) -> dict[str, Any]:
    log(f"job queue: {plan.jobs:,} jobs admitted while drained, then drained through {len(llama)} llama-server(s)")
    with tempfile.TemporaryDirectory(prefix="corral-bench-jobs-") as workdir:
        daemon = CorralDaemon(Path(workdir) / "corral").start()
        try:
            names = [f"llama{index}" for index in range(len(llama))]
            for name, (host, port) in zip(names, llama, strict=True):
                daemon.add_provider(name, f"http://{host}:{port}")
            key = daemon.create_key("bench-jobs")
            _wait_ready(daemon, len(names))
            latency = _latency(daemon, key, plan.latency_pairs)
            log(
                f"  one client: synchronous p50 {latency['sync_p50_ms']} ms, queued p50 {latency['job_p50_ms']} ms "
                f"({latency['added_p50_ms']:+.2f} ms)"
            )
            for name in names:
                _admin(daemon, "POST", f"/providers/{name}/drain")
            admission = _admission(worker, daemon, key, plan)
            log(f"  admission: {admission['jobs_per_s']:,.0f} jobs/s durable ({admission['errors']} errors)")
            drain = _drain(daemon, names, llama, parallel, plan)
            log(
                f"  drain: {drain['jobs']:,} jobs in {drain['seconds']} s ({drain['jobs_per_s']:,.0f} jobs/s), "
                f"the gateway held {drain['slot_utilisation_pct']} % of the slots, llama-server processing "
                f"{drain['llama_processing_pct']} %"
            )
            synchronous = {
                kind: _synchronous(worker, daemon, key, names, llama, parallel, plan, stream=kind == "streamed")
                for kind in ("streamed", "plain")
            }
            for kind, run in synchronous.items():
                log(
                    f"  the same requests synchronously, {kind} ({run['concurrency']} clients): "
                    f"{run['req_per_s']:,.0f} req/s, the gateway held {run['slot_utilisation_pct']} % "
                    f"of the slots, llama-server processing {run['llama_processing_pct']} %"
                )
        finally:
            daemon.stop()
    return {
        "admission": admission,
        "drain": drain,
        "synchronous": synchronous,
        "latency": latency,
        "plan": plan.__dict__,
    }


def _admin(daemon: CorralDaemon, method: str, path: str) -> Any:
    response = daemon.admin_call(method, path)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()


def _wait_ready(daemon: CorralDaemon, count: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        providers = _admin(daemon, "GET", "/providers")
        if sum(1 for p in providers if p["state"] == "ready" and p["models"]) == count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the llama-server providers were not ready in {READY_TIMEOUT_S}s:\n{daemon.log_tail()}")


def _latency(daemon: CorralDaemon, key: str, pairs: int) -> dict[str, Any]:
    body = {"model": "tiny", "messages": PROMPT, "max_tokens": 8}
    sync_ms: list[float] = []
    job_ms: list[float] = []
    base = f"http://127.0.0.1:{daemon.port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30.0) as client:
        for index in range(pairs + 2):  # the first two pairs warm both paths up
            started = time.perf_counter()
            answer = client.post("/v1/chat/completions", json=body)
            sync = (time.perf_counter() - started) * 1000
            answer.raise_for_status()
            started = time.perf_counter()
            submitted = client.post("/v1/queue/chat/completions", json={"request": body})
            submitted.raise_for_status()
            waited = client.get(f"/v1/queue/{submitted.json()['id']}/wait", params={"timeout": 30})
            job = (time.perf_counter() - started) * 1000
            waited.raise_for_status()
            if waited.json()["state"] != "succeeded":
                raise RuntimeError(f"a job through the empty queue ended {waited.json()['state']}: {waited.text[:300]}")
            if index >= 2:
                sync_ms.append(sync)
                job_ms.append(job)
    sync_p50, job_p50 = statistics.median(sync_ms), statistics.median(job_ms)
    return {
        "pairs": pairs,
        "sync_p50_ms": round(sync_p50, 3),
        "job_p50_ms": round(job_p50, 3),
        "added_p50_ms": round(job_p50 - sync_p50, 3),
    }


def _admission(worker: LoadWorker, daemon: CorralDaemon, key: str, plan: JobsPlan) -> dict[str, Any]:
    spec = round_spec(
        [("127.0.0.1", daemon.port)],
        {"request": {"model": "tiny", "messages": PROMPT, "max_tokens": plan.drain_max_tokens}},
        concurrency=plan.admission_concurrency,
        count=plan.jobs,
        duration_s=120.0,
        headers={"Authorization": f"Bearer {key}"},
        path="/v1/queue/chat/completions",
        queued=True,
    )
    result = worker.run(spec)
    counts = _admin(daemon, "GET", "/jobs/counts")
    latencies = sorted(result["latency_ms"])
    return {
        "jobs": result["ok"],
        "errors": result["errors"],
        "error_samples": result["error_samples"],
        "seconds": round(result["wall_s"], 3),
        "jobs_per_s": round(result["ok"] / result["wall_s"], 1) if result["wall_s"] else 0.0,
        "p50_ms": round(statistics.median(latencies), 3) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 3) if latencies else None,
        "queued_after": counts["queued"],
    }


class SlotWatch:
    """How full the providers' slots were kept over a stretch of time, seen two ways.

    - The gateway's, exact: the growth of each provider's busy slot-seconds (`GET /providers`, the integral of
      its requests in flight within its slots, kept by corral-core) over the stretch's wall time and slots.
      Sampling in-flight counts over the admin socket instead read 72-78 % where the integral read 93 %: each
      sample waits its turn on the daemon's event loop, which serves it at a moment correlated with slots
      changing hands.
    - llama-server's, sampled at 20 Hz (`/slots`, `is_processing`): it leaves out each request's HTTP and
      tokenising time in llama-server, and on this box the CPU llama-server shares with corral-core.
    """

    def __init__(self, daemon: CorralDaemon, names: list[str], llama: list[tuple[str, int]], slots: int) -> None:
        self._daemon, self._names, self._llama, self.slots = daemon, names, llama, slots
        self._busy: list[int] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_llama, daemon=True)
        self._started = self._slot_seconds_before = 0.0

    def _slot_seconds(self) -> float:
        providers = _admin(self._daemon, "GET", "/providers")
        return sum(p["busy_slot_seconds"] for p in providers if p["name"] in self._names)

    def _sample_llama(self) -> None:
        with httpx.Client(timeout=2.0) as client:
            while not self._stop.is_set():
                total = 0
                for host, port in self._llama:
                    try:
                        slots = client.get(f"http://{host}:{port}/slots").json()
                    except (httpx.HTTPError, ValueError):
                        continue
                    total += sum(1 for slot in slots if slot.get("is_processing"))
                self._busy.append(total)
                self._stop.wait(SLOT_SAMPLE_S)

    def start(self) -> None:
        self._slot_seconds_before = self._slot_seconds()
        self._started = time.monotonic()
        self._sampler.start()

    def stop(self) -> dict[str, Any]:
        seconds = time.monotonic() - self._started
        held = self._slot_seconds() - self._slot_seconds_before
        self._stop.set()
        self._sampler.join()
        return {
            "slots": self.slots,
            "slot_utilisation_pct": round(100 * held / (seconds * self.slots), 1) if seconds else None,
            "llama_processing_pct": round(100 * statistics.mean(self._busy) / self.slots, 1) if self._busy else None,
            "llama_samples": len(self._busy),
        }


def _drain(
    daemon: CorralDaemon, names: list[str], llama: list[tuple[str, int]], parallel: int, plan: JobsPlan
) -> dict[str, Any]:
    before = _admin(daemon, "GET", "/jobs/counts")
    queued = before["queued"]
    assert daemon.process is not None
    watch = SlotWatch(daemon, names, llama, parallel * len(llama))
    cpu_before = cpu_seconds(daemon.process.pid)
    watch.start()  # the slots are all free until the undrain: the watch starts as the drain does
    started = time.monotonic()
    for name in names:
        _admin(daemon, "POST", f"/providers/{name}/undrain")
    deadline = started + plan.drain_timeout_s
    counts = _admin(daemon, "GET", "/jobs/counts")
    while (counts["queued"] or counts["running"]) and time.monotonic() < deadline:
        time.sleep(0.05)
        counts = _admin(daemon, "GET", "/jobs/counts")
    use = watch.stop()  # up to 50 ms after the last job ended: a bias of at most 0.1 % on a 10,000-job drain
    seconds = time.monotonic() - started
    cpu_s = cpu_seconds(daemon.process.pid) - cpu_before
    return {
        "jobs": queued,
        "seconds": round(seconds, 2),
        "jobs_per_s": round(queued / seconds, 1) if seconds else 0.0,
        "succeeded": counts["succeeded"] - before["succeeded"],  # the latency phase's jobs came before
        "failed": counts["failed"] - before["failed"],
        "left": counts["queued"] + counts["running"],
        "corral_cpu_ms_per_job": round(1000 * cpu_s / queued, 3) if queued else None,
        "corral_cpu_pct": round(100 * cpu_s / seconds, 1) if seconds else None,
        "max_tokens": plan.drain_max_tokens,
        **use,
    }


def _synchronous(
    worker: LoadWorker,
    daemon: CorralDaemon,
    key: str,
    names: list[str],
    llama: list[tuple[str, int]],
    parallel: int,
    plan: JobsPlan,
    *,
    stream: bool,
) -> dict[str, Any]:
    """The same requests without the queue: one client per slot, each sending its next request as its last one
    ends, which is as full as clients can keep the slots without queueing in llama-server. Streamed, they are
    the same upstream work as the jobs' (a job's attempt is streamed from llama-server, so that a cancel frees
    its slot); plain, they are what the app would send itself."""
    slots = parallel * len(llama)
    body: dict[str, Any] = {"model": "tiny", "messages": PROMPT, "max_tokens": plan.drain_max_tokens}
    if stream:
        body["stream"] = True
    spec = round_spec(
        [("127.0.0.1", daemon.port)],
        body,
        concurrency=slots,
        count=plan.baseline_requests,
        duration_s=plan.drain_timeout_s,
        headers={"Authorization": f"Bearer {key}"},
    )
    watch = SlotWatch(daemon, names, llama, slots)
    watch.start()
    result = worker.run(spec)
    use = watch.stop()
    return {
        "requests": result["ok"],
        "errors": result["errors"],
        "concurrency": slots,
        "stream": stream,
        "req_per_s": round(result["ok"] / result["wall_s"], 1) if result["wall_s"] else 0.0,
        **use,
    }


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    admission, drain, latency = result["admission"], result["drain"], result["latency"]
    streamed = result["synchronous"]["streamed"]
    return [
        {
            "target": "queue: durable admission >= 1,000 jobs/s",
            "measured": f"{admission['jobs_per_s']:,.0f} jobs/s "
            f"({admission['jobs']:,} jobs, {admission['errors']} errors)",
            "met": admission["jobs_per_s"] >= 1000 and admission["errors"] == 0,
        },
        {
            "target": "queue: a job through an empty queue adds <= 10 ms to the p50 (one client)",
            "measured": f"{latency['added_p50_ms']:+.2f} ms ({latency['sync_p50_ms']} -> {latency['job_p50_ms']} ms)",
            "met": latency["added_p50_ms"] <= 10.0,
        },
        {
            "target": f"queue: {drain['jobs']:,} queued jobs drain with the slots kept full "
            f"(held >= {FULL_PCT} % of the time), every one succeeded",
            "measured": f"{drain['succeeded']:,} succeeded, {drain['failed']} failed, {drain['left']} left, "
            f"in {drain['seconds']} s; slots held {drain['slot_utilisation_pct']} % of the time "
            f"({streamed['slot_utilisation_pct']} % by {streamed['concurrency']} synchronous clients)",
            "met": drain["left"] == 0 and drain["failed"] == 0 and (drain["slot_utilisation_pct"] or 0) >= FULL_PCT,
        },
    ]


def markdown(result: dict[str, Any]) -> list[str]:
    admission, drain, latency = result["admission"], result["drain"], result["latency"]
    streamed, plain = result["synchronous"]["streamed"], result["synchronous"]["plain"]
    return [
        "### The job queue (its own corral-core, llama-server x2)",
        "",
        f"- Admission, every provider drained (on disk before each 202): {admission['jobs']:,} jobs from "
        f"{result['plan']['admission_concurrency']} clients in {admission['seconds']} s, "
        f"**{admission['jobs_per_s']:,.0f} jobs/s**; submit p50 {admission['p50_ms']} ms, "
        f"p99 {admission['p99_ms']} ms.",
        f"- Drain after the undrain: {drain['jobs']:,} jobs of max_tokens {drain['max_tokens']} "
        f"in {drain['seconds']} s "
        f"({drain['jobs_per_s']:,.0f} jobs/s). Of the {drain['slots']} slots, the gateway held "
        f"**{drain['slot_utilisation_pct']} %** (busy slot-seconds over the drain's slot-seconds, exact), and "
        f"llama-server reported {drain['llama_processing_pct']} % processing ({drain['llama_samples']} samples at "
        f"{1 / SLOT_SAMPLE_S:.0f} Hz); corral-core used "
        f"{drain['corral_cpu_ms_per_job']} ms of CPU a job ({drain['corral_cpu_pct']} % of a core).",
        f"- The same requests synchronously, without the queue, from {streamed['concurrency']} clients (one per "
        f"slot): streamed as a job's attempt is, {streamed['req_per_s']:,.0f} req/s with "
        f"{streamed['slot_utilisation_pct']} % of the slots held and {streamed['llama_processing_pct']} % processing; "
        f"not streamed, {plain['req_per_s']:,.0f} req/s with {plain['slot_utilisation_pct']} % held and "
        f"{plain['llama_processing_pct']} % processing. A job's attempt is streamed from llama-server so that a "
        "cancel frees its slot at once (it does not notice a plain request's client leaving); on this CPU box "
        "a stream's per-token frames cost llama-server that much.",
        f"- One client, {latency['pairs']} pairs: synchronous p50 {latency['sync_p50_ms']} ms, submitted and waited "
        f"for p50 {latency['job_p50_ms']} ms (**{latency['added_p50_ms']:+.2f} ms**).",
    ]
