"""The machine description, the targets verdicts, and the Markdown and JSON output."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import gateway_core
from bench import archive_cost, jobs_queue, on_demand, stalls, validation

TARGET_CONCURRENCY = 32


def machine(llama_version: str) -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "llama_server": llama_version,
        "corral": gateway_core.__version__,
    }


def _at(levels: list[dict[str, Any]], concurrency: int) -> dict[str, Any] | None:
    return next((level for level in levels if level["concurrency"] == concurrency), None)


FEATURE_SCENARIOS = {
    "console_filter": "a filter over 500 live rows",
    "console_gpu_history": "8 GPUs' hour of history, processes open",
}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the value measured and whether it is met (None where the plan did not measure it)."""
    rows = gateway_targets(results) if "chat" in results else []
    rows += archive_cost.targets(results["archive_cost"]) if "archive_cost" in results else []
    rows += jobs_queue.targets(results["jobs"]) if "jobs" in results else []
    rows += on_demand.targets(results["on_demand"]) if "on_demand" in results else []
    rows += stalls.targets(results["stalls"]) if "stalls" in results else []
    for feature, label in FEATURE_SCENARIOS.items():  # each scenario states its own targets: name -> value, limit
        for name, target in results[feature]["targets"].items() if feature in results else ():
            rows.append(
                {
                    "target": f"console, {label}: {name.replace('_', ' ')} < {target['target']:g}",
                    "measured": f"{target['value']:g}",
                    "met": target["ok"],
                }
            )
    return rows + (console_targets(results["console"]) if "console" in results else [])


def gateway_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    chat = _at(results["chat"], TARGET_CONCURRENCY)
    for name, limit in (("p50", 1.0), ("p99", 5.0)):
        value = chat["overhead"]["latency_ms"][name] if chat else None
        rows.append(
            {
                "target": f"added latency {name} <= {limit:g} ms at {TARGET_CONCURRENCY} clients (chat)",
                "measured": None if value is None else f"{value:+.3f} ms",
                "met": None if value is None else value <= limit,
            }
        )
    for level in results["stream"]:
        value = level["overhead"]["ttft_ms"]["p50"]
        rows.append(
            {
                "target": f"TTFT p50 <= 1 ms slower than direct (stream, c={level['concurrency']})",
                "measured": None if value is None else f"{value:+.3f} ms",
                "met": None if value is None else value <= 1.0,
            }
        )
    best = results["null"]["max_sustained"]["gateway"]
    rows.append(
        {
            "target": ">= 1,500 req/s through the gateway to the null upstream (< 1% errors)",
            "measured": f"{best['rps']:.0f} req/s at c={best['concurrency']}" if best else "no level < 1% errors",
            "met": bool(best and best["rps"] >= 1500),
        }
    )
    soak = results["soak"]
    rows.append(
        {
            "target": f"RSS flat over the soak ({soak['gateway']['requests']:,} requests)",
            "measured": f"{soak['rss_kib_start'] / 1024:.1f} -> {soak['rss_kib_end'] / 1024:.1f} MiB "
            f"(second half {soak['rss_growth_second_half_kib']:+d} KiB)",
            "met": soak["rss_flat"],
        }
    )
    return rows


def _keys(summary: dict[str, Any]) -> str:
    unanswered = f", {summary['timeouts']} unanswered in 5 s" if summary["timeouts"] else ""
    return (
        f"p50 {_ms1(summary['p50'])} ms, p99 {_ms1(summary['p99'])} ms, max {_ms1(summary['max'])} ms "
        f"({summary['count']} keys{unanswered})"
    )


def _ms1(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _verdict(limit: float, value: float | None, unanswered: int = 0) -> bool | None:
    return None if value is None else value < limit and not unanswered


def console_targets(console: dict[str, Any]) -> list[dict[str, Any]]:
    idle, keys = console["idle"], console["keypress_ms"]
    rows = [
        {
            "target": "console: first frame within 1 s of starting",
            "measured": f"{console['first_frame_s']:.2f} s "
            f"(all the data shown at {console['first_data_frame_s']:.2f} s)",
            "met": console["first_frame_s"] <= 1.0,
        },
        {
            "target": "console: under 10% of one core when idle (state moving at 1 Hz)",
            "measured": f"{idle['cpu_pct']:.1f}% over {idle['window_s']:g} s",
            "met": idle["cpu_pct"] < 10.0,
        },
        {
            "target": "console: a keypress answered in under 100 ms (p99, dashboard)",
            "measured": _keys(keys),
            "met": _verdict(100.0, keys["p99"], keys["timeouts"]),
        },
    ]
    for stream in console["streaming"]:
        streamed = stream["keypress_ms"]
        rows.append(
            {
                "target": f"console: keys do not lag (p99 < 100 ms) while a {stream['asked_tokens']:,}-token "
                f"chat answer streams at {stream['target_tokens_per_s']:,} tok/s",
                "measured": _keys(streamed) + f"; {stream['tokens_per_s'] or 0:,} tok/s received",
                "met": _verdict(100.0, streamed["p99"], streamed["timeouts"]),
            }
        )
    return rows


def console_markdown(console: dict[str, Any]) -> list[str]:
    state, idle, keys = console["state"], console["idle"], console["keypress_ms"]
    term = console["terminal"]
    deployments = f"{state['deployments']} deployments (llama-server containers)" + (
        f" [{state['deployments_reason']}]" if state["deployments_reason"] else ""
    )
    lines = [
        "",
        f"## Console cost ({term['columns']}x{term['rows']}, {term['driver']})",
        "",
        f"State: {state['gpus']} GPUs (NVML stub), {deployments}, {state['providers']} providers, "
        f"{state['keys']} keys, {idle['live_requests']} live requests each moving once a second. "
        f"Load average when it started: {console['load_average']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| time to first frame | {console['first_frame_s']:.2f} s |",
        f"| time to the first frame with all the data | {console['first_data_frame_s']:.2f} s |",
        f"| CPU when idle ({idle['window_s']:g} s, no keys) | {idle['cpu_pct']:.1f}% of one core; "
        f"{idle['frames_per_s']:g} frames/s, {idle['output_kib_per_s']:g} KiB/s to the terminal; "
        f"corral-core {idle['corral_core_cpu_pct']:.1f}% |",
        f"| keypress latency, dashboard | {_keys(keys)}; console CPU {keys['console_cpu_pct']:.0f}% |",
    ]
    busy = console.get("busy_gateway")
    if busy:
        lines += [
            f"| gateway also serving short requests flat out ({busy['window_s']:g} s) | "
            f"{busy['requests_per_s']:,} req/s, {busy['errors']} errors; console CPU "
            f"{busy['console_cpu_pct']:.0f}%, corral-core {busy['corral_core_cpu_pct']:.0f}% |",
            f"| keypress latency, dashboard, meanwhile | {_keys(busy['keypress_ms'])} |",
        ]
    for stream in console["streaming"]:
        lines += [
            f"| chat answer of {stream['asked_tokens']:,} tokens ({stream['model']}) | {stream['tokens'] or 0:,} "
            f"tokens ({stream['outcome']}), {stream['tokens_per_s'] or 0:,} tok/s as the console received them "
            f"(upstream {stream['target_tokens_per_s']:,}/s), {stream['answer_wall_s']:g} s from send to the "
            f"finished answer; console CPU {stream['console_cpu_pct']:.0f}% |",
            f"| keypress latency while it streams | {_keys(stream['keypress_ms'])} |",
        ]
    lines += ["", "| key | count | p50 ms | max ms |", "|---|---|---|---|"]
    groups = (
        [("", keys)]
        + ([("gateway busy: ", busy["keypress_ms"])] if busy else [])
        + [(f"while {s['asked_tokens']:,} tokens stream: ", s["keypress_ms"]) for s in console["streaming"]]
    )
    for where, summary in groups:
        lines += [
            f"| {where}{key} | {row['count']} | {_ms1(row['p50'])} | {_ms1(row['max'])} |"
            for key, row in summary["by_key"].items()
        ]
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


HEADER = (
    "| scenario | c | path | req/s | p50 ms | p90 ms | p99 ms | TTFT p50 | TTFT p99 | errors "
    "| corral CPU ms/req | corral CPU % | generator CPU % |\n" + "|---" * 13 + "|"
)


def _rows(scenario: str, level: dict[str, Any]) -> list[str]:
    out = []
    for side in ("direct", "gateway"):
        s = level[side]
        lat, ttft = s["latency_ms"], s.get("ttft_ms", {})
        cpu = _ms(s["corral_cpu_ms_per_request"]) if side == "gateway" else "-"
        corral_pct = f"{s['corral_cpu_pct']:.0f}" if side == "gateway" else "-"
        hidden = level.get("corral_upstream_errors", 0) if side == "gateway" else 0
        errors = f"{s['errors']}/{s['requests']}" + (f" ({hidden} upstream)" if hidden else "")
        out.append(
            f"| {scenario} | {level['concurrency']} | {side} | {s['rps']:.0f} | {_ms(lat['p50'])} "
            f"| {_ms(lat['p90'])} | {_ms(lat['p99'])} | {_ms(ttft.get('p50'))} | {_ms(ttft.get('p99'))} "
            f"| {errors} | {cpu} | {corral_pct} | {s['generator_cpu_pct']:.0f} |"
        )
    o = level["overhead"]
    lat, ttft = o["latency_ms"], o.get("ttft_ms", {})
    ratio = f"x{o['rps_ratio']:.2f}" if o["rps_ratio"] is not None else "-"
    out.append(
        f"| {scenario} | {level['concurrency']} | **overhead** | {ratio} | {_delta(lat['p50'])} "
        f"| {_delta(lat['p90'])} | {_delta(lat['p99'])} | {_delta(ttft.get('p50'))} | {_delta(ttft.get('p99'))} "
        "| | | | |"
    )
    return out


def markdown(report: dict[str, Any]) -> str:
    m, r = report["machine"], report["results"]
    lines = (
        gateway_markdown(report)
        if "chat" in r
        else [
            f"# Corral benchmark ({report['plan']['name']} plan, {report['timestamp']})",
            "",
            f"{m['nproc']} x {m['cpu_model']}, Linux {m['kernel']}, Python {m['python']}, corral {m['corral']}.",
        ]
    )
    if "validation" in r:
        lines += ["", *validation.markdown(r["validation"])]
    if "archive_cost" in r:
        lines += ["", *archive_cost.markdown(r["archive_cost"])]
    if "jobs" in r:
        lines += ["", *jobs_queue.markdown(r["jobs"])]
    if "on_demand" in r:
        lines += ["", *on_demand.markdown(r["on_demand"])]
    if "stalls" in r:
        lines += stalls.markdown(r["stalls"])
    if "console" in r:
        lines += console_markdown(r["console"])
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for row in report["targets"]:
        verdict = {True: "yes", False: "**no**", None: "not measured"}[row["met"]]
        lines.append(f"| {row['target']} | {row['measured'] or '-'} | {verdict} |")
    for profile in report.get("profiles", []):
        lines += [
            "",
            f"Profile of corral-core, {profile['label']} ({profile['samples']} samples, "
            f"raw stacks in {profile['raw_file']}):",
            "",
            "| self % | frame |",
            "|---|---|",
        ]
        lines += [f"| {share:.1f} | `{frame}` |" for frame, share in profile["top_self"][:12]]
        lines += ["", "| self % by package |  |", "|---|---|"]
        lines += [f"| {share:.1f} | {package} |" for package, share in profile["by_package"][:10]]
    return "\n".join(lines) + "\n"


def gateway_markdown(report: dict[str, Any]) -> list[str]:
    m, r = report["machine"], report["results"]
    lines = [
        f"# Corral benchmark ({report['plan']['name']} plan, {report['timestamp']})",
        "",
        f"{m['nproc']} x {m['cpu_model']}, Linux {m['kernel']}, Python {m['python']}, "
        f"llama-server {m['llama_server']}, corral {m['corral']}. "
        f"llama-server x{report['plan']['llama_servers']} (--parallel 8, --threads 1), tiny model, "
        f"max_tokens {report['plan']['max_tokens']}. Times in ms; overhead = gateway - direct; "
        '"(N upstream)" = failed upstream attempts inside corral-core, failed over or not.',
        "",
        HEADER,
    ]
    for name, key in (("chat", "chat"), ("stream", "stream")):
        for level in r[key]:
            lines.extend(_rows(name, level))
    for level in r["null"]["levels"]:
        lines.extend(_rows("null", level))
    soak = r["soak"]
    s = soak["gateway"]
    lines.append(
        f"| soak (null) | {soak['concurrency']} | gateway | {s['rps']:.0f} | {_ms(s['latency_ms']['p50'])} "
        f"| {_ms(s['latency_ms']['p90'])} | {_ms(s['latency_ms']['p99'])} | - | - "
        f"| {s['errors']}/{s['requests']} | {_ms(s['corral_cpu_ms_per_request'])} "
        f"| {s['corral_cpu_pct']:.0f} | {s['generator_cpu_pct']:.0f} |"
    )
    best = r["null"]["max_sustained"]
    lines += [
        "",
        "Max sustained rate to the null upstream (< 1% errors): "
        + ", ".join(
            f"{side} {v['rps']:.0f} req/s at c={v['concurrency']}" if v else f"{side} none" for side, v in best.items()
        )
        + ".",
        f"Soak: corral-core RSS {soak['rss_kib_start'] / 1024:.1f} MiB -> {soak['rss_kib_end'] / 1024:.1f} MiB "
        f"over {s['requests']:,} requests; peak RSS (VmHWM) {soak['peak_rss_kib'] / 1024:.1f} MiB.",
    ]
    return lines


def write(report: dict[str, Any], out_dir: Path, stem: str = "latest") -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
