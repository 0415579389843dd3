"""`python -m bench [--quick] [--out bench/results]`: what the gateway costs against calling llama-server directly,
what the console costs (`--console-only`), what stalled connections cost (`--stalls-only`), and the request archive
at 1,000,000 rows (`--archive-only`)."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import (
    archive_cost,
    archive_scale,
    console_filter,
    console_gpu_history,
    jobs_queue,
    on_demand,
    profile,
    report,
    stalls,
    validation,
)
from bench.console_cost import CONSOLE_PLANS, ConsolePlan
from bench.console_cost import measure as measure_console
from bench.load import LoadWorker
from bench.processes import Stack, memory_kib
from bench.scenarios import PLANS, Plan, Runner, plan_dict

PROFILE_S = 10


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="plan",
        help="a shorter run (fewer rounds, 5,000-request soak)",
    )
    parser.add_argument(
        "--plan",
        choices=sorted(PLANS)
        + sorted(CONSOLE_PLANS)
        + sorted(stalls.STALL_PLANS)
        + sorted(archive_scale.SCALE_PLANS)
        + sorted(on_demand.ON_DEMAND_ONLY_PLANS),
        help="full (default), quick, or smoke (the test suite's tiny run); console or console-smoke "
        "measure only the console, into latest-console.json/.md; stalls or stalls-smoke only the stalled "
        "connections, into latest-stalls.json/.md; archive or archive-smoke only the archive at scale, into "
        "latest-archive.json/.md; on-demand or on-demand-smoke only models on demand (a Docker engine), into "
        "latest-on-demand.json/.md",
    )
    parser.add_argument(
        "--console-only",
        action="store_const",
        const="console",
        dest="plan",
        help="only the console's cost (the same as --plan console)",
    )
    parser.add_argument(
        "--console",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure the console after the gateway (default: on for full)",
    )
    parser.add_argument(
        "--stalls-only",
        action="store_const",
        const="stalls",
        dest="plan",
        help="only the stalled-connections scenario (the same as --plan stalls)",
    )
    parser.add_argument(
        "--stalls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure 3,000 stalled connections after the gateway (default: on for full)",
    )
    parser.add_argument(
        "--archive-only",
        action="store_const",
        const="archive",
        dest="plan",
        help="only the request archive at 1,000,000 rows (the same as --plan archive)",
    )
    parser.add_argument(
        "--archive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also build and query a 1,000,000-row archive month after the gateway (default: on for full)",
    )
    parser.add_argument(
        "--on-demand-only",
        action="store_const",
        const="on-demand",
        dest="plan",
        help="only models on demand: cold-start overhead and warm requests (the same as --plan on-demand)",
    )
    parser.add_argument(
        "--on-demand",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure models on demand after the gateway, with containers (default: on for full and quick)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="where latest.json/.md go")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile corral-core with py-spy where a target is missed (default: on for full)",
    )
    parser.set_defaults(plan="full")
    return parser


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the Stack, which stops every process it started


def _profiles(
    runner: Runner, stack: Stack, worker: LoadWorker, verdicts: list[dict[str, Any]], out: Path, plan: Plan
) -> list[dict[str, Any]]:
    """One py-spy profile per kind of missed target, each under the load that missed it."""
    missed = {row["target"] for row in verdicts if row["met"] is False}
    loads = []
    if any("null upstream" in target for target in missed):
        loads.append(("throughput: non-streaming to the null upstream, c=32", "null", False, 32, "profile-null.txt"))
    if any("added latency" in target for target in missed):
        loads.append(("latency: non-streaming chat to llama-server, c=32", "tiny", False, 32, "profile-chat.txt"))
    if any("TTFT" in target for target in missed):
        loads.append(("TTFT: streaming chat to llama-server, c=8", "tiny", True, 8, "profile-stream.txt"))
    results = []
    for label, model, stream, concurrency, filename in loads:
        print(f"profiling corral-core ({label}) for {PROFILE_S}s")
        spec = runner._spec("gateway", model, stream, concurrency, 1_000_000, PROFILE_S + 1.5)
        try:
            results.append(profile.record(stack.gateway_pid, worker, spec, out / filename, label, PROFILE_S))
        except RuntimeError as error:
            print(f"  profile skipped: {error}")
    return results


def console_results(plan: ConsolePlan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-console-") as workdir:
        return measure_console(plan, Path(workdir))


def console_feature_results(smoke: bool) -> dict[str, Any]:
    """The console's targets again with issue 16's features on: a filter over 500 live rows, and an hour of
    history for 8 GPUs with the processes view open."""
    return {"console_filter": console_filter.run(smoke), "console_gpu_history": console_gpu_history.run(smoke)}


def run_console(plan: ConsolePlan) -> dict[str, Any]:
    started = time.monotonic()
    results = {"console": console_results(plan)} | console_feature_results(plan.name.endswith("smoke"))
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": {"name": plan.name},
        "machine": report.machine("-"),
        "results": results,
        "targets": report.targets(results),
        "runtime_s": round(time.monotonic() - started, 1),
    }


def run_stalls(plan: stalls.StallPlan) -> dict[str, Any]:
    started = time.monotonic()
    results = {"stalls": stalls.measure(plan)}
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": {"name": plan.name},
        "machine": report.machine("-"),
        "results": results,
        "targets": report.targets(results),
        "runtime_s": round(time.monotonic() - started, 1),
    }


def run_on_demand(plan: on_demand.OnDemandPlan) -> dict[str, Any]:
    started = time.monotonic()
    results = {"on_demand": on_demand.measure(plan)}
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": {"name": f"on-demand ({plan.name})"},
        "machine": report.machine("-"),
        "results": results,
        "targets": report.targets(results),
        "runtime_s": round(time.monotonic() - started, 1),
    }


def run(
    plan: Plan,
    out: Path,
    want_profile: bool,
    with_console: bool = False,
    with_stalls: bool = False,
    with_on_demand: bool = False,
) -> dict[str, Any]:
    started = time.monotonic()
    with Stack(llama_servers=plan.llama_servers) as stack:
        endpoints = stack.start()
        rss_at_start = memory_kib(stack.gateway_pid)
        worker = LoadWorker()
        stack.callback(worker.close)
        runner = Runner(worker, endpoints, stack.gateway_pid, plan, upstream_errors=stack.upstream_errors)
        results = {
            "corral_memory_at_start_kib": rss_at_start,
            "chat": runner.chat(),
            "stream": runner.stream(),
            "null": runner.null_sweep(),
            "soak": runner.soak(),
            "validation": validation.measure(),  # in this process: the per-request cost the null rows include
        }
        results["corral_memory_at_end_kib"] = memory_kib(stack.gateway_pid)
        best = results["null"]["max_sustained"]["gateway"]
        results["archive_cost"] = archive_cost.measure(
            worker,
            stack.null.base_url,
            concurrencies=(1, best["concurrency"] if best else 32),
            rounds=2 * plan.rounds,
            round_requests=plan.null_round_requests,
            round_s=plan.round_s,
        )
        results["jobs"] = jobs_queue.measure(
            worker, endpoints.llama, jobs_queue.JOBS_PLANS[plan.jobs_plan], parallel=stack.parallel
        )
        verdicts = report.targets(results)
        profiles = _profiles(runner, stack, worker, verdicts, out, plan) if want_profile else []
        generator = {
            "max_rate_direct_to_null_rps": (results["null"]["max_sustained"]["direct"] or {}).get("rps"),
            "max_cpu_pct": max(
                level[side]["generator_cpu_pct"]
                for key in ("chat", "stream")
                for level in results[key]
                for side in ("direct", "gateway")
            ),
            "kind": "raw asyncio HTTP/1.1 (httptools, uvloop), keep-alive, separate process",
        }
        llama_version = stack.llama_version()
    if with_on_demand:  # its own corral-core and containers, after the gateway's stack stopped
        results["on_demand"] = on_demand.measure(on_demand.ON_DEMAND_PLANS[plan.name])
    if with_stalls:  # its own corral-core (short deadlines) and null upstream, after the gateway's stack stopped
        results["stalls"] = stalls.measure(stalls.STALL_PLANS["stalls"])
    if with_console:  # after the gateway's stack has stopped, so that nothing else competes for the cores
        results["console"] = console_results(CONSOLE_PLANS["console"])
        results |= console_feature_results(smoke=False)
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": plan_dict(plan),
        "machine": report.machine(llama_version),
        "generator": generator,
        "results": results,
        "targets": report.targets(results),
        "profiles": profiles,
        "runtime_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.plan in CONSOLE_PLANS:
        result = run_console(CONSOLE_PLANS[args.plan])
        json_path, md_path = report.write(result, args.out, "latest-console")
    elif args.plan in stalls.STALL_PLANS:
        result = run_stalls(stalls.STALL_PLANS[args.plan])
        json_path, md_path = report.write(result, args.out, "latest-stalls")
    elif args.plan in on_demand.ON_DEMAND_ONLY_PLANS:
        result = run_on_demand(on_demand.ON_DEMAND_ONLY_PLANS[args.plan])
        json_path, md_path = report.write(result, args.out, "latest-on-demand")
    elif args.plan in archive_scale.SCALE_PLANS:
        result = archive_scale.run(archive_scale.SCALE_PLANS[args.plan])
        json_path, md_path = archive_scale.write(result, args.out)
    else:
        plan = PLANS[args.plan]
        with_console = plan.name == "full" if args.console is None else args.console
        with_stalls = plan.name == "full" if args.stalls is None else args.stalls
        want_profile = plan.profile if args.profile is None else args.profile
        with_archive = plan.name == "full" if args.archive is None else args.archive
        with_on_demand = plan.name in ("full", "quick") if args.on_demand is None else args.on_demand
        result = run(plan, args.out, want_profile, with_console, with_stalls, with_on_demand)
        if with_archive:  # after everything else, alone: it takes both cores for a few minutes
            archive_scale.add_to(result)
            archive_scale.write(result, args.out)  # its tables, which latest.md does not draw
        json_path, md_path = report.write(result, args.out)
    print()
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path} in {result['runtime_s']}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
