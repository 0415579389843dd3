"""The dashboard's live tables: rows keyed by id, updated cell by cell, not cleared and refilled on updates.

Formatting only. Each table turns LiveState's dicts into cells; `LiveTable.sync` (live_table.py) applies the
difference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Static

from console.format import ago, count, dash, duration, key_state, latency, until
from console.widgets.live_table import Cell, LiveTable, Row
from console.widgets.on_demand import LOAD_LEVELS, load_time, memory_cell, policy_label, short_ago
from gateway_core.contracts.fleet_views import ContainerView, OnDemandView
from gateway_core.contracts.views import KeyView, LiveRequestView, ProviderView, RequestEnd, RouterModelView

SPARK_BARS = "▁▂▃▄▅▆▇█"
ERROR_KIND = re.compile(r" \((?:([^()]*); )?[A-Za-z_]\w*\)$")  # describe()'s "(ClientConnectorError)" at the end


def spark(values: Sequence[float]) -> str:
    """A text sparkline, for trends inside table cells."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK_BARS[0] * len(values)
    return "".join(SPARK_BARS[min(7, int(value / top * 7.999))] for value in values)


def trend(values: Sequence[float]) -> str:
    """A sparkline of the last seconds and the latest value: '▁▃▅█ 12'."""
    return f"{spark(values)} {count(round(values[-1], 1))}" if values else "-"


def short_reason(detail: str) -> str:
    """A probe's detail as a row has room for: what failed, without the URL it names first or the error's kind.
    "cannot reach http://h:9: connection refused: nothing listens on h:9 (ClientConnectorError)" ->
    "connection refused: nothing listens on h:9"."""
    if detail.startswith("cannot reach ") and ": " in detail:
        detail = detail.split(": ", 1)[1]
    return without_error_kind(detail)


def without_error_kind(detail: str) -> str:
    """A probe's detail without the error's kind at its end: "(ClientConnectorError)" tells an operator nothing."""
    return ERROR_KIND.sub(lambda match: f" ({match[1]})" if match[1] else "", detail)


def iso_age(started_at: str | None, now: float) -> float | None:
    if not started_at:
        return None
    try:
        return now - datetime.fromisoformat(started_at).timestamp()
    except ValueError:
        return None


class DashboardPanel(Vertical):
    """A bordered, titled panel: an optional notice line above one live table."""

    def __init__(self, heading: str, table: LiveTable, *, id: str, classes: str = "") -> None:
        super().__init__(id=id, classes=classes)
        self.border_title = heading
        self.heading = heading
        self.table = table
        self.notice = Static("", classes="notice")
        self._notice: tuple[str | None, bool] = (None, False)
        self._summary = ""
        self._matches = ""  # "3/12" while the table's filter is on

    def compose(self) -> ComposeResult:
        yield self.notice
        yield self.table

    def on_mount(self) -> None:
        self.notice.display = False

    def set_notice(self, text: str | None, *, hint: bool = False) -> None:
        """A line above the table: a problem (the default), or a `hint` for an empty table."""
        if (text, hint) == self._notice:
            return  # called on every tick: an unchanged notice costs no layout
        self._notice = (text, hint)
        self.notice.display = bool(text)
        self.notice.set_class(hint, "-hint")
        if text:
            self.notice.update(Text(text))

    def set_summary(self, summary: str) -> None:
        self._summary = summary
        heading = f"{self.heading} {self._matches}" if self._matches else self.heading
        self.border_title = f"{heading} · {summary}" if summary else heading

    def on_live_table_filtered(self, message: LiveTable.Filtered) -> None:
        self._matches = f"{message.shown}/{message.total}" if message.text else ""
        self.set_summary(self._summary)


class FleetTable(LiveTable):
    """One row per deployment: its container (if it has one) and, for Corral's own, its load state and policy.

    A cold deployment keeps its row: a stopped container, or a systemd unit that lists no container at all.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "screen.item('logs')", "Logs", id="fleet.logs", tooltip="Follow the deployment's logs"),
        Binding("s", "screen.item('toggle')", "Start/stop", id="fleet.toggle", tooltip="Stop it, or start it"),
        Binding("R", "screen.item('restart')", "Restart", id="fleet.restart", tooltip="Restart the deployment"),
        Binding(
            "L",
            "screen.item('load')",
            "Load",
            id="fleet.load",
            tooltip="Load the model now (making room on its GPUs) and wait until it is warm",
        ),
        Binding(
            "U",
            "screen.item('unload')",
            "Unload",
            id="fleet.unload",
            tooltip="Unload the model (stop its server) once its requests in flight end",
        ),
        Binding(
            "P",
            "screen.item('pin')",
            "Pin/unpin",
            id="fleet.pin",
            tooltip="Pin the model (never evicted to make room), or unpin it",
        ),
        Binding(
            "M",
            "screen.item('mode')",
            "Always/on demand",
            id="fleet.mode",
            tooltip="Switch between always up and loaded on demand (unloaded when idle)",
            show=False,
        ),
        Binding(
            "i,enter",
            "screen.item('detail')",
            "Details",
            id="fleet.detail",
            tooltip="Its load state, why it failed, its policy, memory and recent load decisions",
        ),
        Binding(
            "x,delete",
            "screen.item('remove')",
            "Remove",
            id="fleet.remove",
            tooltip="Remove the deployment and its provider",
        ),
    ]
    COLUMNS = (
        ("name", "name", 14),
        ("state", "state", 9),
        ("policy", "policy", 9),
        ("slots", "slots", 5),
        ("used", "used", 7),
        ("load", "load", 6),
        ("memory", "memory", 6),
        ("health", "health", 8),
        ("uptime", "uptime", 6),
        ("gpus", "gpus", 4),
        ("model", "model file", 20),
    )
    STATE_LEVELS: ClassVar[dict[str, str]] = {
        "running": "ok",
        "created": "warn",
        "restarting": "warn",
        "paused": "warn",
        "exited": "bad",
        "dead": "bad",
    }
    HEALTH_LEVELS: ClassVar[dict[str, str]] = {"healthy": "ok", "starting": "warn", "unhealthy": "bad"}

    def show(
        self,
        deployments: Sequence[ContainerView],
        busy: Mapping[str, int],
        providers: Mapping[str, ProviderView],
        on_demand: Mapping[str, OnDemandView] | None = None,
    ) -> None:
        now = self.now()
        on_demand = on_demand or {}
        rows = [
            (
                d["container"] or d["name"],
                self._row(d, busy, providers, on_demand.get(d["name"]) if d["managed"] else None, now),
            )
            for d in deployments
        ]
        # Deployments with no container to list: systemd units (a container deployment without one was removed).
        listed = {d["name"] for d in deployments}
        rows += [
            (v["name"], self._unit_row(v, busy, providers, now))
            for v in on_demand.values()
            if v["kind"] == "systemd" and v["name"] not in listed
        ]
        self.sync(rows)

    def _row(
        self,
        d: ContainerView,
        busy: Mapping[str, int],
        providers: Mapping[str, ProviderView],
        view: OnDemandView | None,
        now: float,
    ) -> Row:
        state, exit_code, model = d["state"], d["exit_code"], d["model"]
        health = d["health"] or "none"
        running = state == "running"
        uptime = iso_age(d["started_at"], now) if running else None
        if running and uptime is None:
            uptime = d["uptime_s"]
        shown: Cell
        if view is None:
            shown = self.level(
                state if exit_code is None else f"{state} {exit_code}", self.STATE_LEVELS.get(state, "muted")
            )
        else:
            shown = self._load_state(view)
        return (
            d["name"],
            shown,
            *self._policy_cells(view, d["name"], busy, providers, now),
            self.level(
                dash(None if health == "none" or not running else health), self.HEALTH_LEVELS.get(health, "muted")
            ),
            duration(uptime),
            dash(None if d["gpus"] == "none" else d["gpus"]),
            Path(model).name if model else "-",
        )

    def _unit_row(
        self, view: OnDemandView, busy: Mapping[str, int], providers: Mapping[str, ProviderView], now: float
    ) -> Row:
        return (
            view["name"],
            self._load_state(view),
            *self._policy_cells(view, view["name"], busy, providers, now),
            "-",
            "-",
            ",".join(str(index) for index in view["gpus"]) or "-",
            self.level("systemd unit", "muted"),
        )

    def _load_state(self, view: OnDemandView) -> Cell:
        state = view["state"]
        return self.level(state, LOAD_LEVELS.get(state, "muted"))

    def _policy_cells(
        self,
        view: OnDemandView | None,
        name: str,
        busy: Mapping[str, int],
        providers: Mapping[str, ProviderView],
        now: float,
    ) -> tuple[Cell, ...]:
        provider = providers.get(name)
        slots = f"{busy.get(name, 0)}/{dash(provider['capacity']) if provider else '-'}"
        if view is None:
            return ("-", slots, "-", "-", "-")
        policy = view["policy"]
        label = policy_label(policy)
        return (
            self.level(label, "muted" if label == "always" else "ok"),
            slots,
            short_ago(view["last_used_at"], now) if view["last_used_at"] is not None else "-",
            load_time(view),
            memory_cell(view),
        )


ROUTER_MODEL_SEPARATOR = "\x1f"  # in a router model's row key, between its provider and its model id


def router_model_key(provider: str, model: str) -> str:
    return f"{provider}{ROUTER_MODEL_SEPARATOR}{model}"


def split_router_model_key(key: str) -> tuple[str, str] | None:
    """(provider, model id) for a router model's row, None for a provider's own."""
    provider, separator, model = key.partition(ROUTER_MODEL_SEPARATOR)
    return (provider, model) if separator else None


class ProvidersTable(LiveTable):
    """One row per provider, by name; a router-mode llama-server has a row under it for each of its models."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "screen.item('edit')", "Edit", id="provider.edit", tooltip="Edit the selected provider"),
        Binding(
            "space",
            "screen.item('toggle')",
            "Enable/disable",
            id="provider.toggle",
            tooltip="Stop or resume sending it requests",
        ),
        Binding(
            "L",
            "screen.item('load_model')",
            "Load model",
            id="provider.load_model",
            tooltip="Load the selected model of a router-mode llama-server",
        ),
        Binding(
            "U",
            "screen.item('unload_model')",
            "Unload model",
            id="provider.unload_model",
            tooltip="Unload the selected model of a router-mode llama-server",
        ),
        Binding("x,delete", "screen.item('remove')", "Remove", id="provider.remove", tooltip="Remove the provider"),
        Binding(
            "enter",
            "screen.item('detail')",
            "Details",
            id="provider.detail",
            tooltip="Its configuration, health detail, circuit and recent failed requests",
        ),
    ]
    COLUMNS = (
        ("name", "name", 14),
        ("state", "state", 12),
        ("load", "busy", 7),
        ("p50", "p50", 6),
        ("errors", "err", 6),
        ("requests_s", "req/s", 11),
        ("tokens_s", "tok/s", 11),
        ("type", "type", 12),
        ("models", "models", 21),
    )
    IN_GIVEN_ORDER = True  # by name, each router's models right under it
    STATE_LEVELS: ClassVar[dict[str, str]] = {
        "ready": "ok",
        "loading": "warn",
        "unknown": "warn",
        "down": "bad",
        "circuit_open": "bad",
        "disabled": "muted",
        "draining": "warn",
        "drained": "muted",
    }
    MODEL_LEVELS: ClassVar[dict[str, str]] = {
        "loaded": "ok",
        "loading": "warn",
        "sleeping": "muted",
        "unloaded": "muted",
        "failed": "bad",
    }

    def show(
        self,
        providers: Iterable[ProviderView],
        busy: Mapping[str, int],
        trends: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ) -> None:
        self.sync(self._rows(sorted(providers, key=lambda p: p["name"].casefold()), busy, trends))

    def _rows(
        self,
        providers: Iterable[ProviderView],
        busy: Mapping[str, int],
        trends: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ) -> Iterable[tuple[str, Row]]:
        for p in providers:
            name = p["name"]
            yield name, self._row(p, busy.get(name, 0), *trends.get(name, ((), ())))
            for model in p["router_models"] or ():
                yield router_model_key(name, model["id"]), self._model_row(model)

    def _row(self, p: ProviderView, busy: int, requests_s: Sequence[float], tokens_s: Sequence[float]) -> Row:
        state, capacity, error_rate = p["state"], p["capacity"], p["error_rate"]
        return (
            p["name"],
            self.level(state, self.STATE_LEVELS.get(state, "muted")),
            self.level(f"{busy}/{capacity}", "warn" if capacity and busy >= capacity else "ok" if busy else "muted"),
            latency(p["latency_p50_s"]),
            self.level(f"{error_rate * 100:.1f}%", "bad" if error_rate >= 0.05 else "muted"),
            trend(requests_s),
            trend(tokens_s),
            dash(p["type"]) if p["router_models"] is None else "router",
            self._models_or_reason(p),
        )

    def _models_or_reason(self, p: ProviderView) -> Cell:
        if p["state"] == "down" and p["health_detail"]:
            return self.level(f"⚠ {short_reason(p['health_detail'])}", "bad")  # why it is down, on its row
        return ", ".join(p["models"]) or "-"

    def _model_row(self, model: RouterModelView) -> Row:
        status = model["status"]
        detail = f"{model['id']}: {model['detail']}" if model["detail"] else model["id"]
        return (
            f"└ {model['id']}",
            self.level(status, self.MODEL_LEVELS.get(status, "muted")),
            "",
            "",
            "",
            "",
            "",
            self.level("router model", "muted"),
            detail,
        )


class KeysTable(LiveTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "screen.item('edit')", "Edit", id="key.edit", tooltip="Edit the key's models and limits"),
        Binding("r", "screen.item('revoke')", "Revoke", id="key.revoke", tooltip="Refuse the key from now on"),
        Binding("x,delete", "screen.item('remove')", "Remove", id="key.remove", tooltip="Delete the key for good"),
        Binding(
            "enter",
            "screen.item('detail')",
            "Details",
            id="key.detail",
            tooltip="Its limits, models, use, expiry and recent failed requests (never its secret)",
        ),
    ]
    # Whether a key works (expires, revoked) and its use come first: at 80 columns the columns past models are cut.
    COLUMNS = (
        ("name", "name", 14),
        ("expiry", "expires", 10),
        ("used", "last used", 10),
        ("rpm", "req/m", 5),
        ("tpm", "tok/m", 6),
        ("models", "models", 16),
        ("limits", "rpm/tpm/conc", 14),
        ("id", "id", 12),
    )

    def show(self, keys: Iterable[KeyView]) -> None:
        now = self.now()
        self.sync((k["id"], self._row(k, now)) for k in keys)

    def _row(self, k: KeyView, now: float) -> Row:
        usage, models = k["usage"], k["models"]
        return (
            k["name"],
            self._expiry(k, now),
            ago(k["last_used_at"], now),
            count(usage["requests_last_minute"]),
            count(usage["tokens_last_minute"]),
            self.level("all", "muted") if models is None else ", ".join(models) or "none",
            f"{count(k['rpm'])}/{count(k['tpm'])}/{count(k['max_concurrency'])}",
            k["id"],
        )

    def _expiry(self, k: KeyView, now: float) -> Cell:
        state = key_state(k, now)
        if state != "active":
            return self.level(state, "bad")
        expires_at = k["expires_at"]
        if expires_at is None:
            return self.level("never", "muted")
        return self.level(until(expires_at, now), "warn" if expires_at - now < 86400 * 3 else "ok")


class RequestsTable(LiveTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "x,delete",
            "screen.cancel_request",
            "Cancel request",
            id="request.cancel",
            tooltip="Ask corral-core to cancel the selected request",
        ),
        Binding(
            "enter",
            "screen.item('detail')",
            "Details",
            id="request.detail",
            tooltip="Everything its view holds: key, model, provider, tokens, rate",
        ),
    ]
    # How a request went (status) before its rate: at 80 columns the last column is the one cut.
    COLUMNS = (
        ("key", "key", 12),
        ("model", "model", 16),
        ("provider", "provider", 12),
        ("elapsed", "elapsed", 7),
        ("status", "status", 7),
        ("tokens", "tokens", 6),
        ("rate", "tok/s", 6),
    )
    SORTED = False
    IN_GIVEN_ORDER = True  # the running in arrival order, then the finished, newest first

    def show(self, requests: Iterable[LiveRequestView], finished: Iterable[RequestEnd] = ()) -> None:
        now = self.now()
        running = [(r["id"], self._row(r, now)) for r in requests]
        ended = [(finished_key(r["id"]), self._finished_row(r)) for r in reversed(list(finished))]
        self.sync([*running, *ended])

    def _row(self, r: LiveRequestView, now: float) -> Row:
        rate = r["tokens_per_s"]
        return (
            r["key_name"] or r["key_id"],
            r["model"],
            r["provider"] or self.level("routing", "warn"),
            duration(now - r["started_at"]),
            self.level("running", "ok"),
            count(r["completion_tokens"]),
            "-" if rate is None else f"{rate:.1f}",
        )

    def _finished_row(self, r: RequestEnd) -> Row:
        """Dimmed, with how it ended: its HTTP status (499: the client left) and how long it took."""
        rate = r["tokens_per_s"]
        dim = self.level
        return (
            dim(r["key_name"] or r["key_id"], "muted"),
            dim(r["model"], "muted"),
            dim(r["provider"] or "-", "muted"),
            dim(duration(r["elapsed_s"]), "muted"),
            dim(str(r["status"]), "muted" if r["ok"] else "bad"),
            dim(count(r["completion_tokens"]), "muted"),
            dim("-" if rate is None else f"{rate:.1f}", "muted"),
        )


FINISHED_PREFIX = "done:"  # a finished request's row key: its id behind this, so it cannot be taken for a live one


def finished_key(request_id: str) -> str:
    return FINISHED_PREFIX + request_id


def finished_request_id(row_key: str) -> str | None:
    """The request id of a finished request's row; None for a live one's."""
    return row_key.removeprefix(FINISHED_PREFIX) if row_key.startswith(FINISHED_PREFIX) else None
