"""What the detail views say about a deployment, a provider, a key and a live request: sections of facts as text,
and the same things as JSON or YAML to copy. Pure functions over the wire views (no widgets), so the CLI could
print them too."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from rich.text import Text

from console.format import ago, count, duration, key_state, latency, until, utc_time
from gateway_core.contracts.detail_views import DeploymentDetailView
from gateway_core.contracts.history_views import HistoryRowView
from gateway_core.contracts.views import KeyView, LiveRequestView, ProviderView, RequestEnd

Facts = list[tuple[str, str]]
Section = tuple[str, Facts | list[str]]  # a heading over label/value facts, or over plain lines


def render(sections: Sequence[Section]) -> Text:
    """Sections one under the other: a bold heading, then aligned facts or plain lines."""
    text = Text()
    for index, (heading, body) in enumerate(sections):
        if index:
            text.append("\n")
        text.append(f"{heading}\n", style="bold underline")
        if not body:
            text.append("none\n", style="dim")
        width = max((len(item[0]) for item in body if isinstance(item, tuple)), default=0)
        for item in body:
            if isinstance(item, tuple):
                text.append(f"{item[0].ljust(width)}  ", style="bold")
                text.append(f"{item[1]}\n")
            else:
                text.append(f"{item}\n")
    text.rstrip()
    return text


def as_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


def as_yaml(data: Mapping[str, Any]) -> str:
    plain = json.loads(json.dumps(data, default=str))  # TypedDicts and tuples as plain YAML types
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=1000)


def error_lines(rows: Iterable[HistoryRowView]) -> list[str]:
    """Recent failed requests from the archive, newest first, one line each."""
    return [
        f"{utc_time(row['started_at'])}  {row['status']}  {row['model'] or '-'}  "
        f"{row['error_message'] or row['error_code'] or 'failed'}  ({row['id']})"
        for row in rows
    ]


def deployment_sections(detail: DeploymentDetailView) -> list[Section]:
    """What corral-core's detail route tells of a deployment, beyond its load state."""
    runs: Facts = [("kind", "systemd unit" if detail["kind"] == "systemd" else "container")]
    if detail["kind"] == "container":
        runs += [
            ("container", f"{detail['container']} ({detail['container_id']})"),
            ("image", detail["image"] or "-"),
            ("state", detail["state"]),
            ("health", detail["health"]),
            ("started", detail["started_at"] or "-"),
            ("finished", detail["finished_at"] or "-"),
            ("last exit code", "-" if detail["exit_code"] is None else str(detail["exit_code"])),
            ("restarts", str(detail["restart_count"])),
        ]
        if detail["oom_killed"]:
            runs.append(("killed", "out of memory (OOM)"))
        if detail["error"]:
            runs.append(("engine error", detail["error"]))
    spec = detail["spec"] or {}
    spec_facts: Facts = [(str(name), _value(value)) for name, value in spec.items()]
    checks = [
        f"{check['started_at'] or '-'}  exit {check['exit_code']}  {check['output'] or '(no output)'}"
        for check in detail["health_checks"]
    ]
    environment: Facts = sorted(detail["environment"].items())
    return [
        ("runs as", runs),
        ("launch command", [" ".join(detail["command"]) or "-"]),
        ("environment (secrets masked)", environment),
        ("spec", spec_facts),
        ("health checks (newest last)", checks),
        ("recent errors in its log (newest last)", detail["recent_errors"]),
    ]


def provider_sections(p: ProviderView, now: float) -> list[Section]:
    models = [f"{public} -> {upstream}" if upstream != public else public for public, upstream in p["models"].items()]
    config: Facts = [
        ("type", p["type"]),
        ("url", p["base_url"]),
        ("api key", _api_key(p)),
        ("models", ", ".join(models) or "discovered from the server"),
        ("priority", str(p["priority"])),
        ("weight", str(p["weight"])),
        ("max concurrency", _limit(p["max_concurrency"])),
        ("enabled", "yes" if p["enabled"] else "no"),
        ("draining", "yes" if p["draining"] else "no"),
        ("GPUs", ", ".join(str(g) for g in p["gpus"]) if p["gpus"] is not None else "not configured"),
    ]
    health: Facts = [
        ("state", p["state"]),
        ("health detail", p["health_detail"] or "-"),
        ("last probe", ago(p["last_probe_at"], now)),
        ("circuit", p["circuit"].replace("_", " ")),
        ("capacity", f"{p['in_flight']} in flight of {p['capacity']} slots"),
        ("requests", f"{count(p['requests'])}, {count(p['errors'])} failed ({p['error_rate'] * 100:.1f}%)"),
        ("latency p50", latency(p["latency_p50_s"])),
    ]
    sections: list[Section] = [("configuration", config), ("health", health)]
    if p["router_models"] is not None:
        lines = [f"{m['id']}  {m['status']}" + (f"  {m['detail']}" if m["detail"] else "") for m in p["router_models"]]
        sections.append(("router models", lines))
    return sections


def _api_key(p: ProviderView) -> str:
    variable = p["api_key_env"]
    if variable is None:
        return "none"
    hint = p["api_key_hint"]
    return f"from ${variable}" + (f" ({hint})" if hint else " (not set in corral-core's environment)")


def key_sections(k: KeyView, now: float) -> list[Section]:
    usage = k["usage"]
    expires = k["expires_at"]
    facts: Facts = [
        ("id", k["id"]),
        ("state", key_state(k, now)),
        ("models", "every model" if k["models"] is None else ", ".join(k["models"]) or "none"),
        ("requests a minute", _limit(k["rpm"])),
        ("tokens a minute", _limit(k["tpm"])),
        ("max concurrency", _limit(k["max_concurrency"])),
        ("expires", "never" if expires is None else f"{utc_time(expires)} ({until(expires, now)})"),
        ("created", f"{utc_time(k['created_at'])} ({ago(k['created_at'], now)})"),
        ("last used", ago(k["last_used_at"], now)),
        ("archive keeps", k["capture"] or "the gateway's setting"),
    ]
    use: Facts = [
        ("in flight", str(usage["in_flight"])),
        (
            "last minute",
            f"{count(usage['requests_last_minute'])} requests, {count(usage['tokens_last_minute'])} tokens",
        ),
    ]
    return [("key (the secret is never shown again)", facts), ("use", use)]


def request_sections(r: LiveRequestView, now: float) -> list[Section]:
    rate = r["tokens_per_s"]
    facts: Facts = [
        ("id", r["id"]),
        ("key", f"{r['key_name'] or '-'} ({r['key_id']})"),
        ("model", r["model"]),
        ("provider", r["provider"] or "routing: none chosen yet"),
        ("route", r["route"]),
        ("streaming", "yes" if r["stream"] else "no"),
        ("started", f"{utc_time(r['started_at'])} ({duration(now - r['started_at'])} ago)"),
        ("tokens so far", count(r["completion_tokens"])),
        ("tokens/s", "-" if rate is None else f"{rate:.1f}"),
    ]
    return [("request", facts)]


def ended_facts(r: RequestEnd) -> Facts:
    """How a request ended, from its request.end view."""
    status = r["status"]
    outcome = "the client left" if status == 499 else "succeeded" if r["ok"] else "failed"
    return [
        ("status", f"{status} ({outcome})"),
        ("took", duration(r["elapsed_s"])),
        ("tokens", f"{count(r['prompt_tokens'])} in, {count(r['completion_tokens'])} out"),
    ]


def _limit(value: int | None) -> str:
    return "no limit" if value is None else f"{value:,}"


def _value(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return " ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)
