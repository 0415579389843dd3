"""Turning the rounds of one side (direct or gateway) into the figures a report shows."""

from __future__ import annotations

from collections import Counter
from typing import Any


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks; `ordered` must be sorted."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarize(rounds: list[dict[str, Any]], stream: bool) -> dict[str, Any]:
    """Merge rounds: each has the load worker's result plus `corral_cpu_s` measured around it."""
    latencies = sorted(x for r in rounds for x in r["latency_ms"])
    ttfts = sorted(x for r in rounds for x in r["ttft_ms"])
    ok = sum(r["ok"] for r in rounds)
    errors = sum(r["errors"] for r in rounds)
    wall = sum(r["wall_s"] for r in rounds)
    corral_cpu = sum(r["corral_cpu_s"] for r in rounds)
    samples: Counter[str] = Counter()
    for r in rounds:
        samples.update(r["error_samples"])
    summary: dict[str, Any] = {
        "requests": ok + errors,
        "errors": errors,
        "error_rate": errors / (ok + errors) if ok + errors else 0.0,
        "error_samples": dict(samples.most_common(3)),
        "reconnects": sum(r.get("reconnects", 0) for r in rounds),
        "rps": round(ok / wall, 1) if wall else 0.0,
        "latency_ms": {
            "p50": _rounded(percentile(latencies, 0.50)),
            "p90": _rounded(percentile(latencies, 0.90)),
            "p99": _rounded(percentile(latencies, 0.99)),
            "mean": _rounded(sum(latencies) / len(latencies) if latencies else None),
        },
        "generator_cpu_pct": round(100 * sum(r["cpu_s"] for r in rounds) / wall, 1) if wall else 0.0,
        "corral_cpu_pct": round(100 * corral_cpu / wall, 1) if wall else 0.0,
        "corral_cpu_ms_per_request": _rounded(1000 * corral_cpu / (ok + errors) if ok + errors else None, 4),
        "wall_s": round(wall, 3),
    }
    if stream:
        summary["ttft_ms"] = {"p50": _rounded(percentile(ttfts, 0.50)), "p99": _rounded(percentile(ttfts, 0.99))}
    return summary


def overhead(direct: dict[str, Any], gateway: dict[str, Any]) -> dict[str, Any]:
    """Gateway minus direct, for every latency figure; and the gateway's throughput as a share of direct."""
    result: dict[str, Any] = {}
    for group in ("latency_ms", "ttft_ms"):
        if group in direct and group in gateway:
            result[group] = {
                name: _rounded(gateway[group][name] - direct[group][name])
                if gateway[group][name] is not None and direct[group][name] is not None
                else None
                for name in direct[group]
            }
    result["rps_ratio"] = round(gateway["rps"] / direct["rps"], 3) if direct["rps"] else None
    return result
