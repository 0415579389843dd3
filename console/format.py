"""How the `corral` CLI and the console write values, so both say the same thing the same way.

One function per kind of value. Durations are compact and in whole units ("1m05s", "2h03m", "3d04h"): the
console's columns are sized for them, and a cell that only changes once a second costs nothing between ticks.
Latencies keep their precision below a minute ("840ms", "1.6s"). Terminal and widget concerns (tables,
colours, bars) stay with their callers; this module only turns values into text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Literal

from gateway_core.contracts.fleet_views import DeploymentSpecView, PlanReport
from gateway_core.contracts.history_views import HistoryDetailView, HistoryRowView, UsagePoint
from gateway_core.contracts.views import KeyPublicView
from gateway_core.fleet.units import GiB, MiB, format_bytes

__all__ = [
    "GiB",
    "KeyState",
    "ago",
    "answer_text",
    "body_heading",
    "count",
    "dash",
    "duration",
    "energy",
    "format_bytes",
    "gib",
    "gpu_time",
    "history_facts",
    "key_state",
    "latency",
    "percent",
    "plan_headline",
    "plan_lines",
    "plural",
    "pretty_json",
    "process_memory",
    "rate",
    "response_shown",
    "tokens",
    "until",
    "utc_time",
]

KeyState = Literal["active", "revoked", "expired"]
# An en dash: a measurement that does not exist (a remote provider's GPU time), which is never shown as 0.
NONE_MEASURED = "\u2013"
JOULES_PER_WH = 3600.0


def dash(value: object) -> str:
    """What a missing or unsupported value shows as."""
    return "-" if value is None or value == "" else str(value)


def duration(seconds: float | None) -> str:
    """An uptime, an age or a time left, in whole seconds: "5s", "1m05s", "2h03m", "3d04h"; negative is 0s."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def latency(seconds: float | None) -> str:
    """A response time: milliseconds below a second ("840ms"), tenths below a minute ("1.6s"), then a duration."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.1f}s" if seconds < 60 else duration(seconds)


def ago(timestamp: float | None, now: float) -> str:
    """How long since `timestamp` (epoch seconds): "12s ago", or "never" for None."""
    return "never" if timestamp is None else f"{duration(now - timestamp)} ago"


def until(timestamp: float | None, now: float) -> str:
    """How long until `timestamp`: "in 3d04h", "5s ago" once it has passed, "never" for None."""
    if timestamp is None:
        return "never"
    left = timestamp - now
    return f"in {duration(left)}" if left > 0 else f"{duration(-left)} ago"


def count(value: float | None) -> str:
    """A count in at most four characters or so: 950, 1.2k, 15k, 3.4M."""
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return str(value) if isinstance(value, int) else f"{value:g}"


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f}%"


def plural(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def gib(size: float | None) -> str:
    """Bytes as GiB with one decimal and no unit, for "used/total" pairs: "9.6"."""
    return "-" if size is None else f"{size / GiB:.1f}"


def process_memory(size: float | None) -> str:
    """One process's GPU memory, short: "9.1G", or "512M" below a GiB."""
    if size is None:
        return "-"
    return f"{size / GiB:.1f}G" if size >= GiB else f"{size / MiB:.0f}M"


def key_state(key: KeyPublicView, now: float) -> KeyState:
    """Whether the gateway accepts a key now. A revoked key stays revoked; a key past its expiry is expired even
    when its view was taken before it ran out (the console keeps views for as long as nothing changes them)."""
    if key["revoked"]:
        return "revoked"
    expires_at = key["expires_at"]
    if key["expired"] or (expires_at is not None and expires_at <= now):
        return "expired"
    return "active"


def plan_headline(spec: DeploymentSpecView) -> str:
    """What a deployment plan would run: "gpu0: tiny.gguf on port 8081, gpus all, image …"."""
    gpus = spec["gpus"]
    gpus_text = "none" if gpus is None else gpus if isinstance(gpus, str) else ",".join(str(g) for g in gpus)
    model = PurePath(spec["model_path"]).name
    return f"{spec['name']}: {model} on port {spec['port']}, gpus {gpus_text}, image {spec['image']}"


def plan_lines(report: PlanReport) -> list[str]:
    """corral-core's VRAM estimate line by line, then where it would run; indented to sit under a headline.

    `report` is a plan or a deploy result: both carry `estimate` and `placement` (warnings are left to the
    caller, which shows them apart)."""
    return [f"  {line}" for line in [*report["estimate"]["explanation"], f"placement: {report['placement']['reason']}"]]


def energy(joules: float | None) -> str:
    """Energy as an operator's meter reads it: "0.42 Wh", "12.3 Wh", "1.25 kWh"; NONE_MEASURED for none."""
    if joules is None:
        return NONE_MEASURED
    wh = joules / JOULES_PER_WH
    if wh >= 1000:
        return f"{wh / 1000:.2f} kWh"
    if wh >= 10:
        return f"{wh:.1f} Wh"
    return f"{wh:.2f} Wh"


def gpu_time(seconds: float | None) -> str:
    """GPU-seconds: "0.84 GPU-s" below a minute, then a duration ("2h03m GPU"); NONE_MEASURED for none."""
    if seconds is None:
        return NONE_MEASURED
    return f"{seconds:.2f} GPU-s" if seconds < 60 else f"{duration(seconds)} GPU"


def rate(per_second: float | None, unit: str = "tok/s") -> str:
    """A generation speed: "45.2 tok/s"; "-" when unknown."""
    return "-" if per_second is None else f"{per_second:.1f} {unit}"


def utc_time(timestamp: float, *, seconds: bool = True) -> str:
    """A moment in UTC, sortable and unambiguous on any box: "2025-10-09 08:53:20"."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def answer_text(body: str | None, body_format: str | None) -> str | None:
    """What an archived answer said: a streamed answer's text as stored, a chat's choices[0].message.content or
    a completion's choices[0].text. None when the body is something else (an error, embeddings, a cut body)."""
    if body is None:
        return None
    if body_format == "text":
        return body
    try:
        answer = json.loads(body)
        choice = answer["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(choice, dict):
        return None
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else choice.get("text")
    return content if isinstance(content, str) else None


def pretty_json(body: str) -> str:
    """A stored JSON body indented for reading; a body that is not JSON (cut by the cap, or text) as it is."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def tokens(row: HistoryRowView | UsagePoint) -> str:
    """Prompt and completion tokens as "12+180"; "-" when neither was counted."""
    prompt, completion = row["prompt_tokens"], row["completion_tokens"]
    if prompt is None and completion is None:
        return "-"
    return f"{count(prompt or 0)}+{count(completion or 0)}"


def history_facts(entry: HistoryDetailView) -> list[tuple[str, str]]:
    """An archived request's metadata as (label, value) lines, for `corral history show` and the detail screen."""
    tried = entry["providers_tried"]
    error = f"{entry['error_code'] or ''} {entry['error_message'] or ''}".strip()
    model, upstream, provider = entry["model"], entry["upstream_model"], entry["provider"]
    routed = dash(model) + (f" as {upstream}" if upstream and upstream != model else "")
    routed += f" on {provider}" if provider else " (not routed)"
    timing = [f"latency {latency(entry['latency_s'])}"]
    if entry["ttft_s"] is not None:
        timing.append(f"first token {latency(entry['ttft_s'])}")
    if entry["tokens_per_s"] is not None:
        timing.append(rate(entry["tokens_per_s"]))
    if entry["gpu_seconds"] is None and entry["energy_joules"] is None:
        gpu = f"{NONE_MEASURED} (not served on this box's GPUs)"
    else:
        gpu = f"{gpu_time(entry['gpu_seconds'])}, {energy(entry['energy_joules'])}"
    return [
        ("id", entry["id"]),
        ("started", f"{utc_time(entry['started_at'])} UTC"),
        ("source", f"{entry['source']} ({entry['route']}{', streamed' if entry['stream'] else ''})"),
        ("key", f"{entry['key_name'] or '-'} (id {entry['key_id'] or '-'})"),
        ("model", routed),
        ("tried", " → ".join(tried) if tried else "-"),
        ("status", f"{entry['status']}" + (f" {error}" if error else "")),
        ("tokens", f"{tokens(entry)} (prompt+completion)"),
        ("timing", ", ".join(timing)),
        ("gpu", gpu),
        ("client", f"{dash(entry['client_address'])}, {entry['bytes_in']} B in, {entry['bytes_out']} B out"),
        ("capture", entry["capture"]),
    ]


def body_heading(what: str, body: str | None, size: int | None, truncated: bool, capture: str) -> str:
    """A body's heading: its size ("request body (2.1 KiB)"), where the cap cut it, or why there is none."""
    if body is None:
        why = "this request's capture was metadata only" if capture != "full" else "none was kept for this request"
        return f"{what}: not captured ({why})"
    original = format_bytes(size) if size is not None else "?"
    if truncated:
        return f"{what}: cut at {format_bytes(len(body.encode()))} of {original} (corral-core's body cap)"
    return f"{what} ({original})"


def response_shown(entry: HistoryDetailView) -> str | None:
    """The answer's text where there is one; otherwise the stored body, JSON indented."""
    body = entry["response_body"]
    if body is None:
        return None
    text = answer_text(body, entry["response_format"])
    if text is not None and entry["status"] < 400:
        return text
    return pretty_json(body) if entry["response_format"] == "json" else body
