"""Models on demand in the bench: what a cold start costs through Corral, and what a warm on-demand model costs.

Its own corral-core, on the machine's Docker engine, with the testbed's llama-server image and tiny model (CPU
containers: a cold start's cost on Corral's side does not depend on a GPU, and this box has none):

- **Cold-start overhead.** The time to first token of a streamed chat request sent to Corral for a cold
  on-demand deployment (its container stopped), minus llama-server's own time to start, load and answer the same
  model: a twin container (the same image, environment and mount, another port and name, no Corral labels, so
  Corral leaves it alone) started directly, its /health polled every 5 ms until 200, then the same request sent
  to it, timed from the container's start to the first token. Rounds alternate (direct, Corral, Corral, direct,
  ...) after one warm-up round each; each stops the container again. Target: the p50 difference <= 300 ms.
- **Warm requests.** An on-demand deployment kept warm against an `always` one of the same model, both through
  Corral, in alternating closed-loop rounds at one client (non-streamed chat, 8 tokens). Target: the on-demand
  p50 within noise of the `always` one, noise being the spread of the per-round p50s of either side.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import orjson
from docker.models.containers import Container

from bench.load import LoadWorker, round_spec
from gateway_core.fleet.deployment import CONTAINER_MODELS_DIR, DeploymentSpec
from tests.testbed import CorralDaemon, ensure_llama_image, ensure_llama_server, ensure_tiny_model, free_port
from tests.testbed.child_processes import die_with_parent

PROMPT = [{"role": "user", "content": "Say something."}]
DIRECT_POLL_S = 0.005  # how often the direct side asks /health: fine enough to stand for llama-server's own time
READY_TIMEOUT_S = 60.0
COLD_TIMEOUT_S = 30.0
TARGET_COLD_MS = 300.0
BENCH_LABEL = "corral.bench"


@dataclass(frozen=True)
class OnDemandPlan:
    name: str
    cold_rounds: int  # per side, after one warm-up round each
    warm_rounds: int  # per side, alternating
    warm_requests: int  # per warm round, at one client
    max_tokens: int = 8


ON_DEMAND_PLANS = {
    "full": OnDemandPlan("full", cold_rounds=12, warm_rounds=6, warm_requests=300),
    "quick": OnDemandPlan("quick", cold_rounds=6, warm_rounds=4, warm_requests=150),
    "smoke": OnDemandPlan("smoke", cold_rounds=2, warm_rounds=2, warm_requests=20),
}


def measure(plan: OnDemandPlan, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Both scenarios; {"skipped": reason} where no Docker engine answers."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as error:
        log(f"on demand: skipped, no Docker engine ({error})")
        return {"skipped": f"no Docker engine: {error}", "plan": asdict(plan)}
    log(f"on demand: {plan.cold_rounds} cold starts a side, {plan.warm_rounds} warm rounds a side")
    with contextlib.closing(client), contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="corral-bench-on-demand-")))
        image = ensure_llama_image(client, ensure_llama_server())
        model = ensure_tiny_model()
        daemon = CorralDaemon(workdir / "corral", preexec=die_with_parent)
        stack.callback(daemon.stop)
        daemon.start()
        key = daemon.create_key("bench-on-demand")
        suffix = uuid.uuid4().hex[:6]
        on_demand, always = f"bench-od-{suffix}", f"bench-always-{suffix}"
        stack.callback(_remove_deployments, daemon, [on_demand, always])
        common = {"model_path": str(model), "image": image, "gpus": "none", "ctx_size": 512, "parallel": 1}
        _admin(daemon, "POST", "/fleet/deployments", {**common, "name": always})
        _admin(daemon, "POST", "/fleet/deployments", {**common, "name": on_demand, "load": _on_demand_policy()})
        twin = stack.enter_context(_twin_container(client, image, model, suffix))
        cold = _cold_starts(plan, daemon, key, on_demand, twin, log)
        warm = _warm_requests(plan, daemon, key, on_demand, always, log)
    return {"plan": asdict(plan), "cold_start": cold, "warm": warm}


def _on_demand_policy() -> dict[str, Any]:
    return {"mode": "on-demand", "idle_ttl_s": 3600, "load_timeout_s": COLD_TIMEOUT_S}


def _admin(daemon: CorralDaemon, method: str, path: str, body: Any = None) -> Any:
    response = daemon.admin_call(method, path, json=body)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {response.text[:500]}")
    return response.json()


def _remove_deployments(daemon: CorralDaemon, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(httpx.HTTPError):
            daemon.admin_call("DELETE", f"/fleet/deployments/{name}")


@contextlib.contextmanager
def _twin_container(client: docker.DockerClient, image: str, model: Path, suffix: str) -> Iterator[TwinContainer]:
    """The direct side's container: the deployment's image, environment and mount, on its own port."""
    spec = DeploymentSpec(
        name=f"bench-direct-{suffix}", model_path=str(model), image=image, gpus=None, port=free_port(), ctx_size=512
    )
    container = client.containers.create(
        image,
        name=f"corral-bench-direct-{suffix}",
        environment={**spec.container_env(), "LLAMA_ARG_N_PARALLEL": "1"},
        network_mode="host",
        volumes={spec.models_dir: {"bind": CONTAINER_MODELS_DIR, "mode": "ro"}},
        labels={BENCH_LABEL: "1"},
    )
    try:
        yield TwinContainer(container, spec.port)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@dataclass
class TwinContainer:
    container: Container
    port: int

    def cold_start(self, http: httpx.Client, max_tokens: int) -> dict[str, float]:
        """Start it, poll /health, send the request: each phase in ms from the start call."""
        base = f"http://127.0.0.1:{self.port}"
        started = time.perf_counter()
        self.container.start()
        running = time.perf_counter()
        deadline = started + COLD_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.TransportError):
                if http.get(base + "/health").status_code == 200:
                    break
            if time.perf_counter() >= deadline:
                raise RuntimeError(f"the direct container did not answer /health in {COLD_TIMEOUT_S:g} s")
            time.sleep(DIRECT_POLL_S)
        healthy = time.perf_counter()
        first_token = _first_token(http, base, _body("direct", max_tokens), {}) + healthy
        return {
            "ttft_ms": (first_token - started) * 1000,
            "start_call_ms": (running - started) * 1000,
            "health_ms": (healthy - started) * 1000,
        }

    def stop(self) -> None:
        self.container.stop(timeout=5)
        self.container.wait(timeout=30)


def _body(model: str, max_tokens: int, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
    }
    if stream:
        body["stream"] = True
    return body


def _first_token(http: httpx.Client, base: str, body: dict[str, Any], headers: dict[str, str]) -> float:
    """Send a streamed chat request; the perf_counter seconds, from sending it, to the first content chunk. The
    rest of the stream is read, so that the answer completes."""
    started = time.perf_counter()
    first: float | None = None
    with http.stream("POST", base + "/v1/chat/completions", json=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code} from {base}: {response.read()[:500]!r}")
        for line in response.iter_lines():
            if first is None and line.startswith("data: {"):
                chunk = orjson.loads(line[6:])
                choices = chunk.get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    first = time.perf_counter()
    if first is None:
        raise RuntimeError(f"no content chunk in the stream from {base}")
    return first - started


def _cold_starts(
    plan: OnDemandPlan, daemon: CorralDaemon, key: str, name: str, twin: TwinContainer, log: Callable[[str], None]
) -> dict[str, Any]:
    direct: list[dict[str, float]] = []
    corral: list[dict[str, float]] = []
    headers = {"Authorization": f"Bearer {key}"}

    # A new client each round on both sides: one connect each, and no pooled connection to a stopped container.
    def corral_round() -> dict[str, float]:
        _make_cold(daemon, name)
        with httpx.Client(timeout=COLD_TIMEOUT_S) as http:
            ttft = _first_token(http, daemon.base_url, _body(name, plan.max_tokens), headers) * 1000
        view = _admin(daemon, "GET", f"/fleet/on-demand/{name}")
        return {"ttft_ms": ttft, "corral_load_ms": (view.get("last_load_s") or 0.0) * 1000}

    def direct_round() -> dict[str, float]:
        try:
            with httpx.Client(timeout=COLD_TIMEOUT_S) as http:
                return twin.cold_start(http, plan.max_tokens)
        finally:
            twin.stop()

    direct_round(), corral_round()  # warm-up: the image's and the model's pages in the cache, both paths run
    for index in range(plan.cold_rounds):
        order = (direct_round, corral_round) if index % 2 == 0 else (corral_round, direct_round)
        for side in order:
            (direct if side is direct_round else corral).append(side())
    _make_cold(daemon, name)
    direct_p50 = statistics.median(r["ttft_ms"] for r in direct)
    corral_p50 = statistics.median(r["ttft_ms"] for r in corral)
    result = {
        "rounds": plan.cold_rounds,
        "direct_ttft_ms": _spread([r["ttft_ms"] for r in direct]),
        "corral_ttft_ms": _spread([r["ttft_ms"] for r in corral]),
        "overhead_p50_ms": round(corral_p50 - direct_p50, 1),
        "direct_start_call_p50_ms": round(statistics.median(r["start_call_ms"] for r in direct), 1),
        "direct_health_p50_ms": round(statistics.median(r["health_ms"] for r in direct), 1),
        "corral_load_p50_ms": round(statistics.median(r["corral_load_ms"] for r in corral), 1),
        "direct_health_poll_ms": DIRECT_POLL_S * 1000,
    }
    log(
        f"  cold start to first token: direct p50 {direct_p50:.0f} ms, through Corral p50 {corral_p50:.0f} ms "
        f"(overhead {result['overhead_p50_ms']:+.0f} ms)"
    )
    return result


def _make_cold(daemon: CorralDaemon, name: str) -> None:
    """Unload the deployment and wait until OnDemand shows it cold (its container stopped)."""
    view = _admin(daemon, "POST", f"/fleet/deployments/{name}/unload")
    deadline = time.monotonic() + COLD_TIMEOUT_S
    while view["state"] != "cold":
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{name} did not become cold in {COLD_TIMEOUT_S:g} s: {view}")
        time.sleep(0.05)
        view = _admin(daemon, "GET", f"/fleet/on-demand/{name}")


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def _warm_requests(
    plan: OnDemandPlan, daemon: CorralDaemon, key: str, on_demand: str, always: str, log: Callable[[str], None]
) -> dict[str, Any]:
    _admin(daemon, "POST", f"/fleet/deployments/{on_demand}/load")
    _wait_ready(daemon, [on_demand, always])
    worker = LoadWorker()
    try:

        def run_round(model: str, requests: int) -> dict[str, Any]:
            spec = round_spec(
                [("127.0.0.1", daemon.port)],
                _body(model, plan.max_tokens, stream=False),
                concurrency=1,
                count=requests,
                duration_s=60.0,
                headers={"Authorization": f"Bearer {key}"},
            )
            result: dict[str, Any] = worker.run(spec)
            return result

        run_round(on_demand, 20), run_round(always, 20)  # warm-up
        rounds: dict[str, list[dict[str, Any]]] = {on_demand: [], always: []}
        for index in range(plan.warm_rounds):
            order = (on_demand, always) if index % 2 == 0 else (always, on_demand)
            for model in order:
                rounds[model].append(run_round(model, plan.warm_requests))
        state = _admin(daemon, "GET", f"/fleet/on-demand/{on_demand}")["state"]
    finally:
        worker.close()

    def side(results: list[dict[str, Any]]) -> dict[str, Any]:
        latencies = [x for r in results for x in r["latency_ms"]]
        round_p50s = [statistics.median(r["latency_ms"]) for r in results if r["latency_ms"]]
        return {
            "requests": sum(r["ok"] + r["errors"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "p50_ms": round(statistics.median(latencies), 3),
            "round_p50_ms": [round(p, 3) for p in round_p50s],
        }

    od, al = side(rounds[on_demand]), side(rounds[always])
    noise = max(max(s["round_p50_ms"]) - min(s["round_p50_ms"]) for s in (od, al))
    result = {
        "rounds": plan.warm_rounds,
        "requests_per_round": plan.warm_requests,
        "on_demand": od,
        "always": al,
        "difference_p50_ms": round(od["p50_ms"] - al["p50_ms"], 3),
        "noise_ms": round(noise, 3),
        "on_demand_state_after": state,
    }
    log(
        f"  warm, one client: on-demand p50 {od['p50_ms']:.2f} ms, always p50 {al['p50_ms']:.2f} ms "
        f"({result['difference_p50_ms']:+.3f} ms; the round p50s spread over {noise:.3f} ms)"
    )
    return result


def _wait_ready(daemon: CorralDaemon, names: list[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        providers = {p["name"]: p for p in _admin(daemon, "GET", "/providers")}
        if all(providers.get(name, {}).get("state") == "ready" for name in names):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{', '.join(names)} were not ready in {READY_TIMEOUT_S:g} s:\n{daemon.log_tail()}")


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    cold_target = f"on demand: cold-start overhead <= {TARGET_COLD_MS:g} ms p50 (time to first token, minus a direct"
    cold_target += " cold start of the same container)"
    warm_target = "on demand: warm requests cost nothing extra (p50 within noise of an `always` deployment)"
    if "skipped" in result:
        return [
            {"target": cold_target, "measured": f"skipped: {result['skipped']}", "met": None},
            {"target": warm_target, "measured": f"skipped: {result['skipped']}", "met": None},
        ]
    cold, warm = result["cold_start"], result["warm"]
    errors = warm["on_demand"]["errors"] + warm["always"]["errors"]
    return [
        {
            "target": cold_target,
            "measured": f"{cold['overhead_p50_ms']:+.0f} ms ({cold['direct_ttft_ms']['p50']:.0f} ms direct -> "
            f"{cold['corral_ttft_ms']['p50']:.0f} ms through Corral, {cold['rounds']} rounds a side)",
            "met": cold["overhead_p50_ms"] <= TARGET_COLD_MS,
        },
        {
            "target": warm_target,
            "measured": f"{warm['difference_p50_ms']:+.3f} ms ({warm['always']['p50_ms']:.3f} -> "
            f"{warm['on_demand']['p50_ms']:.3f} ms; noise {warm['noise_ms']:.3f} ms; {errors} errors)",
            "met": abs(warm["difference_p50_ms"]) <= warm["noise_ms"] and errors == 0,
        },
    ]


def markdown(result: dict[str, Any]) -> list[str]:
    if "skipped" in result:
        return ["### Models on demand", "", f"Skipped: {result['skipped']}."]
    cold, warm = result["cold_start"], result["warm"]
    d, c = cold["direct_ttft_ms"], cold["corral_ttft_ms"]
    return [
        "### Models on demand (its own corral-core, CPU containers of the tiny model)",
        "",
        f"- Cold start to the first token of a streamed chat, {cold['rounds']} rounds a side, alternating: a direct "
        f"start of a twin container (its /health polled every {cold['direct_health_poll_ms']:g} ms) p50 "
        f"{d['p50']:.0f} ms (min {d['min']:.0f}, max {d['max']:.0f}; the start call "
        f"{cold['direct_start_call_p50_ms']:.0f} ms, /health 200 at {cold['direct_health_p50_ms']:.0f} ms); "
        f"through Corral, the deployment cold, p50 "
        f"{c['p50']:.0f} ms (min {c['min']:.0f}, max {c['max']:.0f}; OnDemand's load, start to warm, p50 "
        f"{cold['corral_load_p50_ms']:.0f} ms). **Overhead {cold['overhead_p50_ms']:+.0f} ms p50.**",
        f"- Warm, one client, non-streamed chat, {warm['rounds']} rounds of {warm['requests_per_round']} a side, "
        f"alternating: on-demand p50 {warm['on_demand']['p50_ms']:.3f} ms, `always` p50 "
        f"{warm['always']['p50_ms']:.3f} ms (**{warm['difference_p50_ms']:+.3f} ms**; round p50s "
        f"{', '.join(f'{p:.2f}' for p in warm['on_demand']['round_p50_ms'])} against "
        f"{', '.join(f'{p:.2f}' for p in warm['always']['round_p50_ms'])}).",
    ]


# `python -m bench --plan on-demand` (or --on-demand-only) and `--plan on-demand-smoke`: this scenario alone.
ON_DEMAND_ONLY_PLANS = {"on-demand": ON_DEMAND_PLANS["full"], "on-demand-smoke": ON_DEMAND_PLANS["smoke"]}
