"""Models on demand in words: a deployment's load state, policy, use and memory, and the fleet's load decisions.

Formatting only, shared by the containers panel, the deployment detail and the decision toasts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from console.format import latency
from gateway_core.contracts.fleet_views import LoadDecisionView, LoadPolicyView, OnDemandView
from gateway_core.fleet.load_policy import format_duration
from gateway_core.fleet.units import GiB, MiB

LOAD_LEVELS: dict[str, str] = {
    "warm": "ok",
    "loading": "warn",
    "unloading": "warn",
    "cold": "muted",
    "failed": "bad",
}
# What was done to the deployment, as every toast says it: "<did what> deployment <name>: <why>".
DECISION_VERBS: dict[str, str] = {"start": "started", "stop": "stopped", "refuse": "refused to start"}


def short_ago(timestamp: float | None, now: float) -> str:
    """How long since `timestamp` in its largest unit only, for a narrow column: "12s ago", "3m ago", "never"."""
    if timestamp is None:
        return "never"
    seconds = max(0, int(now - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def policy_label(policy: LoadPolicyView) -> str:
    """ "always", "on-demand", or "pinned" (on demand, never evicted)."""
    if policy["mode"] == "always":
        return "always"
    return "pinned" if policy["pin"] else "on-demand"


def policy_words(policy: LoadPolicyView) -> str:
    """The whole policy in one line, for the detail view."""
    if policy["mode"] == "always":
        return "always (started with corral-core, never unloaded)"
    parts = [
        f"on demand, unloaded after {format_duration(policy['idle_ttl_s'])} idle",
        f"priority {policy['priority']}",
        f"load timeout {format_duration(policy['load_timeout_s'])}",
    ]
    if policy["pin"]:
        parts.append("pinned (never evicted)")
    return ", ".join(parts)


def size(size_bytes: float | None) -> str:
    """GPU memory in GiB with one decimal ("3.1 GiB"), MiB below one GiB."""
    if size_bytes is None:
        return "-"
    return f"{size_bytes / GiB:.1f} GiB" if size_bytes >= GiB else f"{size_bytes / MiB:.0f} MiB"


def memory_cell(view: OnDemandView) -> str:
    """What NVML measured ("3.1G"), else the GGUF estimate marked with "~" ("~3.4G"), else "-"."""
    measured, estimated = view["measured_memory_bytes"], view["estimated_memory_bytes"]
    shown = measured if measured is not None else estimated
    if shown is None:
        return "-"
    text = f"{shown / GiB:.1f}G" if shown >= GiB else f"{shown / MiB:.0f}M"
    return text if measured is not None else f"~{text}"


def memory_words(view: OnDemandView) -> str:
    measured, estimated = view["measured_memory_bytes"], view["estimated_memory_bytes"]
    parts = []
    if measured is not None:
        parts.append(f"{size(measured)} measured")
    if estimated is not None:
        parts.append(f"{size(estimated)} estimated")
    return ", ".join(parts) or "not measured, no estimate"


def load_time(view: OnDemandView) -> str:
    return latency(view["last_load_s"])


def decision_line(decision: LoadDecisionView) -> str:
    """ "stopped deployment a: to make room for b on GPU 0 (needs 3.1 GiB, 1.2 GiB free)"."""
    verb = DECISION_VERBS.get(decision["action"], decision["action"])
    line = f"{verb} deployment {decision['deployment']}: {decision['reason']}"
    need, free = decision["need_bytes"], decision["free_bytes"]
    if need is not None and free is not None and "free" not in decision["reason"]:
        line += f" (needs {size(need)}, {size(free)} free)"
    return line


def state_words(view: OnDemandView) -> str:
    """The load state with what goes with it: since when it loads and who waits; a failure's reason is the
    detail's own section."""
    state, reason = view["state"], view["reason"].strip()
    if state == "loading":
        parts = [reason] if reason else []
        parts += [f"{view['waiting']} waiting"] if view["waiting"] else []
        return f"loading ({', '.join(parts)})" if parts else "loading"
    if state == "failed":
        return "failed (why: below)" if reason else "failed (corral-core gave no reason)"
    return state


def load_summary(views: Iterable[OnDemandView]) -> str:
    """The containers panel's title: "2/5 warm · 1 loading · 1 failed · 3 waiting" (cold ones are the rest;
    waiting: requests held until their model loads)."""
    listed = list(views)
    states = Counter(view["state"] for view in listed)
    parts = [f"{states['warm']}/{len(listed)} warm"]
    parts += [f"{states[state]} {state}" for state in ("loading", "unloading", "failed") if states[state]]
    waiting = sum(view["waiting"] for view in listed)
    if waiting:
        parts.append(f"{waiting} waiting")
    return " · ".join(parts)
