"""The console's home: GPUs, containers, providers, keys, live requests and queued jobs, redrawn from LiveState by
row key."""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.geometry import Size
from textual.message import Message
from textual.widgets import Label, Sparkline, Static

from console.format import count, duration
from console.job_state import counts_line
from console.live_state import FINISHED_KEPT, SECTIONS, LiveState
from console.read_only import SUB_TITLE as READ_ONLY_SUB_TITLE
from console.read_only import is_read_only, refuses
from console.screens.base import LiveScreen
from console.screens.gpu_history import ProviderHistoryScreen
from console.widgets.archive_alert import ArchiveAlert
from console.widgets.gpu_panel import GpuTable, gpu_notice, gpu_summary
from console.widgets.job_tables import JobsTable
from console.widgets.key_hints import KeyHints
from console.widgets.live_table import Clock, LiveTable
from console.widgets.on_demand import decision_line, load_summary
from console.widgets.panels import (
    DashboardPanel,
    FleetTable,
    KeysTable,
    ProvidersTable,
    RequestsTable,
    finished_request_id,
    short_reason,
    split_router_model_key,
)
from gateway_core.contracts.fleet_views import GpuSnapshotView

DASHBOARD_CSS = str(Path(__file__).parent.parent / "styles" / "dashboard.tcss")
COMPACT_BELOW_ROWS = 34  # under this height only the focused panel opens; the others shrink to their title
NARROW_BELOW_COLUMNS = 100
TIME_SECTIONS = frozenset({"status", "requests", "keys", "fleet", "jobs"})  # cells that age with the clock
FLEET_POLICY_ACTIONS = frozenset({"toggle", "load", "unload", "pin", "mode", "detail"})  # offered by load policy
ROUTER_MODEL_ACTIONS = frozenset({"load_model", "unload_model"})  # a router model's row only
DECISION_TOAST_S = 6.0
DECISION_TOASTS = 3  # at most this many toasts per redraw; a burst (many idle unloads at once) shows as one more
READ_ONLY_FIRST_RUN = "Nothing serves models yet. Read-only: open `corral` without --read-only to add one."
JOBS_SHOWN = 50  # the newest jobs the panel lists; its title counts them all (a queue may hold 10,000)
FIRST_RUN_HINTS = (
    ("d", "deploy a model", "run a GGUF file with llama-server in a container"),
    ("p", "add an endpoint", "llama-server, ollama, OpenAI-compatible or Anthropic"),
    ("n", "create a key", "one per app that calls the gateway"),
)


class Throughput:
    """Requests/s and tokens/s per provider, in one-second buckets, from LiveState's live and ended requests."""

    def __init__(self, now: Clock, window: int = 30) -> None:
        self.now = now
        self.window = window
        self._second = int(now())
        self._bucket: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # provider -> [requests, tokens]
        self._seen: dict[str, tuple[str, int]] = {}  # request id -> (provider, tokens so far)
        self.history: dict[str, deque[tuple[float, float]]] = {}
        self.total: deque[tuple[float, float]] = self._empty()
        self.closed = 0  # seconds closed so far

    def _empty(self) -> deque[tuple[float, float]]:
        return deque([(0.0, 0.0)] * self.window, maxlen=self.window)

    def observe(
        self, requests: Mapping[str, Mapping[str, Any]], ended: Iterable[Mapping[str, Any]] = (), *, count: bool = True
    ) -> None:
        """Count the requests that ended and the tokens generated since the last call: O(requests + ended).

        `ended` are the request.end views since the last call, so a request that came and went between two calls
        counts too. With `count=False` it only takes `requests` as the new baseline (after a gap in what it saw).
        """
        for request in ended:
            provider, tokens = request.get("provider") or "", request.get("completion_tokens") or 0
            before = self._seen.pop(request["id"], None)
            if count:
                self._bucket[provider][0] += 1
                self._bucket[provider][1] += max(0, tokens - (before[1] if before else 0))
        seen: dict[str, tuple[str, int]] = {}
        for request_id, request in requests.items():
            provider, tokens = request.get("provider") or "", request.get("completion_tokens") or 0
            before = self._seen.get(request_id)
            if count and before is not None and tokens > before[1]:
                self._bucket[provider][1] += tokens - before[1]
            seen[request_id] = (provider, tokens)
        self._seen = seen

    def roll(self) -> bool:
        """Close the current bucket once the clock passes a second; True when the series moved."""
        second = int(self.now())
        if second <= self._second:
            return False
        gap = min(second - self._second, self.window)
        self._second = second
        for provider, (requests, tokens) in self._bucket.items():
            self.history.setdefault(provider, self._empty()).append((requests, tokens))
        for provider, series in self.history.items():
            if provider not in self._bucket:
                series.append((0.0, 0.0))
            series.extend([(0.0, 0.0)] * (gap - 1))
        self.total.append((sum(b[0] for b in self._bucket.values()), sum(b[1] for b in self._bucket.values())))
        self.total.extend([(0.0, 0.0)] * (gap - 1))
        self._bucket.clear()
        self.closed += 1
        return True

    def series(self, provider: str, which: int, last: int = 6) -> list[float]:
        """The last seconds of requests (which=0) or tokens (which=1); empty until the first second has passed."""
        history = self.history.get(provider)
        if history is None:
            return [0.0] * last if self.closed else []
        return [sample[which] for sample in list(history)[-last:]]


class FirstRunPanel(Vertical):
    """Shown instead of empty tables until the first provider or deployment exists."""

    def on_mount(self) -> None:
        self.border_title = "Get started"
        if is_read_only(self):  # the keys below are off: say how to get them instead
            self.query_one(".first-run-title", Static).update(READ_ONLY_FIRST_RUN)
            for line in self.query(".hint-line"):
                line.display = False

    def compose(self) -> ComposeResult:
        yield Static("Nothing serves models yet. Start with one of these:", classes="first-run-title")
        for key, action, why in FIRST_RUN_HINTS:
            with Horizontal(classes="hint-line"):
                yield Static(f"{key}  {action}", classes="hint-key")
                yield Static(why, classes="hint-why", id=f"first-run-why-{key}")


class DashboardScreen(LiveScreen):
    """Six live panels; in a short terminal only the focused one opens (Tab moves between them)."""

    CSS_PATH: ClassVar[str] = DASHBOARD_CSS
    AUTO_FOCUS = ""  # the first render picks: providers, or the GPUs on a first run
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "post_action('fleet.deploy')", "Deploy", id="fleet.deploy", tooltip="Deploy a GGUF model"),
        Binding(
            "p", "post_action('provider.add')", "Add endpoint", id="provider.add", tooltip="Add a provider endpoint"
        ),
        Binding("n", "post_action('key.create')", "New key", id="key.create", tooltip="Create an API key"),
        # The GPUs panel's own H (gpu.history) wins while it has focus; elsewhere H is the providers' history.
        Binding(
            "H",
            "provider_history",
            "Provider history",
            id="provider.history",
            tooltip="Graphs of each provider's requests and tokens per second over the last hour",
        ),
    ]

    @dataclass
    class CancelRequest(Message):
        """The operator asked to cancel this live request; the app asks corral-core."""

        request_id: str

    @dataclass
    class ItemAction(Message):
        """An action on the selected row of a panel: section is "fleet", "providers", "keys", "jobs" or "requests"."""

        section: str
        key: str
        action: str

    @dataclass
    class ActionRequested(Message):
        """The operator pressed an app-level action's key here (ids: fleet.deploy, provider.add, key.create)."""

        action_id: str

    def __init__(self, now: Clock = time.time, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.now = now
        self.throughput = Throughput(now)
        self.gpus = GpuTable(now, id="gpus-table")
        self.fleet = FleetTable(now, id="fleet-table")
        self.providers = ProvidersTable(now, id="providers-table")
        self.keys = KeysTable(now, id="keys-table")
        self.requests = RequestsTable(now, id="requests-table")
        self.jobs = JobsTable(now, id="jobs-table")
        self._ready = False
        self._lines: dict[str, str] = {}  # selector -> the text shown
        self._decisions_shown = 0  # LiveState.decisions_seen when the last toasts were raised

    def compose(self) -> ComposeResult:
        with Horizontal(id="status-bar"):
            yield Static("", id="status-line")
            yield ArchiveAlert(id="archive-alert")
            yield Label("req/s", id="requests-rate", classes="spark-label")
            yield Sparkline([], id="requests-spark")
            yield Label("tok/s", id="tokens-rate", classes="spark-label")
            yield Sparkline([], id="tokens-spark")
        with Vertical(id="panels"):
            yield DashboardPanel("GPUs", self.gpus, id="gpus")
            yield FirstRunPanel(id="first-run")
            yield DashboardPanel("Containers", self.fleet, id="fleet", classes="-serving -gives-way")
            yield DashboardPanel("Providers", self.providers, id="providers", classes="-serving -gives-way")
            yield DashboardPanel("Keys", self.keys, id="keys", classes="-serving -grow")
            # Jobs shows once the queue has any: a gateway whose apps never queue keeps its room for the rest.
            yield DashboardPanel("Jobs", self.jobs, id="jobs", classes="-serving -grow -no-jobs")
            yield DashboardPanel("Live requests", self.requests, id="requests", classes="-serving -grow-more")
        yield KeyHints()

    def on_mount(self) -> None:
        self._fit(self.app.size)
        self.watch(self.app, "theme", self._restyle, init=False)
        self.set_interval(1.0, self._tick)
        self.call_after_refresh(self._first_render)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size)

    def _fit(self, size: Size) -> None:
        self.set_class(size.height < COMPACT_BELOW_ROWS, "-compact")
        self.set_class(size.width < NARROW_BELOW_COLUMNS, "-narrow")

    def _first_render(self) -> None:
        self._ready = True
        self._show_totals()
        self._redraw_all()
        if self.focused is None:
            (self.gpus if self.has_class("-first-run") else self.providers).focus()

    def on_screen_resume(self) -> None:
        if self._ready:
            self._redraw_all()  # the app feeds only the screens in its stack: catch up after another mode

    def _redraw_all(self) -> None:
        live = self.host.live
        self._decisions_shown = live.decisions_seen  # decisions from before this screen showed are not news
        self.throughput.observe(live.requests, live.take_ended(), count=False)
        with self.app.batch_update():
            self._redraw(live, set(SECTIONS))

    def live_changed(self, live: LiveState, changed: set[str]) -> None:
        if not self._ready:
            return  # the first render, after mount, shows everything
        if "requests" in changed:
            self.throughput.observe(live.requests, live.take_ended())
        try:
            with self.app.batch_update():
                self._redraw(live, changed)
        except NoMatches:
            # The panels are composed once, at mount, and only the app's teardown removes them; the app's flush
            # timer can still tick in between (seen in CI: '#fleet' gone, the screen not yet): nothing to draw.
            return

    def _redraw(self, live: LiveState, changed: set[str] | frozenset[str]) -> None:
        deployments = live.fleet["deployments"]
        # Only once the snapshot has come: a busy gateway must not flash "nothing serves models" while connecting.
        first_run = live.status is not None and not live.providers and not deployments
        if first_run != self.has_class("-first-run"):
            self.set_class(first_run, "-first-run")
            if not first_run and self.focused in (None, self.gpus):
                self.call_after_refresh(self.providers.focus)
        busy: Counter[str] = Counter()
        if changed & {"requests", "providers", "fleet", "trends"}:
            busy = Counter(request["provider"] for request in live.requests.values())
        if "gpus" in changed:
            self._show_gpus(live.gpus)
        if changed & {"fleet", "on_demand", "providers", "requests"}:
            self._show_fleet(live, busy)
        if changed & {"fleet", "on_demand", "providers"}:
            self.refresh_bindings()  # what the selected row offers may have changed
        if "decisions" in changed:
            self._toast_decisions(live)
        if changed & {"providers", "requests", "trends"}:
            self._show_providers(live, busy)
        if "keys" in changed:
            self.keys.show(live.keys.values())
            revoked = sum(1 for key in live.keys.values() if key["revoked"])
            panel = self._panel("keys")
            panel.set_summary(f"{len(live.keys)}" + (f" · {revoked} revoked" if revoked else ""))
            panel.set_notice(None if live.keys else "No keys yet: press n to create one for an app.", hint=True)
        if "requests" in changed:
            self.requests.show(live.requests.values(), live.recent_finished)
            panel = self._panel("requests")
            kept = f" (the last {FINISHED_KEPT} below, dimmed)" if live.recent_finished else ""
            panel.set_summary(f"{len(live.requests)} in flight · {live.finished} finished{kept}")
            panel.set_notice(None if live.requests or live.recent_finished else "Nothing in flight.", hint=True)
        if changed & {"jobs", "keys"}:
            self._show_jobs(live)
        if "archive" in changed:
            self.query_one(ArchiveAlert).show(live.archive)
        self._show_status(live)

    def _panel(self, name: str) -> DashboardPanel:
        return self.query_one(f"#{name}", DashboardPanel)

    def _show_gpus(self, gpus: GpuSnapshotView) -> None:
        panel = self._panel("gpus")
        panel.set_notice(gpu_notice(gpus))
        available = gpus["state"] == "ok"
        self.gpus.set_class(not available, "-unavailable")
        self.gpus.show(gpus["devices"] if available else [])
        panel.set_summary(gpu_summary(gpus))

    def _show_fleet(self, live: LiveState, busy: Counter[str]) -> None:
        engine, deployments = live.fleet["engine"], live.fleet["deployments"]
        panel = self._panel("fleet")
        ok = engine["state"] == "ok"
        reason = engine["reason"] or "unknown reason"
        if not ok:
            panel.set_notice(
                "waiting for corral-core…" if reason == "connecting" else f"Docker engine unavailable: {reason}"
            )
        else:
            panel.set_notice(
                None if deployments else "No llama-server containers: press d to deploy a model.", hint=True
            )
        self.fleet.show(deployments, busy, live.providers, live.on_demand)
        # The first-run view hides this panel: its deploy hint says why deploying cannot work yet.
        self._write_line(
            "#first-run-why-d", FIRST_RUN_HINTS[0][2] if ok or reason == "connecting" else f"needs Docker: {reason}"
        )
        self.query_one("#first-run-why-d").set_class(not ok and reason != "connecting", "-problem")
        if not ok:
            panel.set_summary("engine unavailable")
        elif live.on_demand:
            panel.set_summary(load_summary(live.on_demand.values()))
        else:
            running = sum(1 for d in deployments if d["state"] == "running")
            panel.set_summary(f"{running}/{len(deployments)} running")

    def _toast_decisions(self, live: LiveState) -> None:
        """Each start, stop or refusal since the last redraw as a toast; a refusal is a warning."""
        news = live.decisions_since(self._decisions_shown)
        self._decisions_shown = live.decisions_seen
        if not self.is_current:
            return  # another mode shows; its own notifications are what the operator reads there
        for decision in news[-DECISION_TOASTS:]:
            refused = decision["action"] == "refuse"
            self.notify(
                decision_line(decision),
                title="load refused" if refused else "fleet",
                severity="warning" if refused else "information",
                timeout=DECISION_TOAST_S * (2 if refused else 1),
            )
        if len(news) > DECISION_TOASTS:
            more = len(news) - DECISION_TOASTS
            self.notify(
                f"and {more} earlier load decisions: press i on a deployment for its own", timeout=DECISION_TOAST_S
            )

    def _show_providers(self, live: LiveState, busy: Counter[str]) -> None:
        trends = {name: (self.throughput.series(name, 0), self.throughput.series(name, 1)) for name in live.providers}
        self.providers.show(live.providers.values(), busy, trends)
        down = [p for p in sorted(live.providers.values(), key=lambda p: p["name"]) if p["state"] == "down"]
        if not live.providers:
            self._panel("providers").set_notice("No providers yet: press p to add an endpoint.", hint=True)
        elif down:  # the row's models column says why too, but narrow terminals cut it: say it above the table
            more = f" (and {len(down) - 1} more down)" if len(down) > 1 else ""
            reason = short_reason(down[0]["health_detail"]) or "no reason given"
            self._panel("providers").set_notice(f"{down[0]['name']} is down: {reason}{more}")
        else:
            self._panel("providers").set_notice(None)
        ready = sum(1 for p in live.providers.values() if p["state"] == "ready")
        self._panel("providers").set_summary(f"{ready}/{len(live.providers)} ready")

    def _show_jobs(self, live: LiveState) -> None:
        jobs = live.jobs
        self.jobs.show(jobs.newest(JOBS_SHOWN), {key_id: key["name"] for key_id, key in live.keys.items()})
        panel = self._panel("jobs")
        panel.set_summary(counts_line(jobs.counts))
        empty = not jobs.recent and not jobs.total()
        if empty != panel.has_class("-no-jobs"):
            panel.set_class(empty, "-no-jobs")
            self.set_class(not empty, "-with-jobs")

    def _show_status(self, live: LiveState) -> None:
        status = live.status
        parts = [f"corral-core {status['version']}" if status else "corral-core: connecting…"]
        if status:
            parts.append(f"up {duration(self.now() - status['started_at'])}")
        parts.append(f"{len(live.requests)} in flight")
        if is_read_only(self):
            parts.insert(0, READ_ONLY_SUB_TITLE)
        self._write_line("#status-line", " · ".join(parts))

    def _show_totals(self) -> None:
        for which, name in enumerate(("requests", "tokens")):
            series = [sample[which] for sample in self.throughput.total]
            self.query_one(f"#{name}-spark", Sparkline).data = series
            unit = "req/s" if which == 0 else "tok/s"
            self._write_line(f"#{name}-rate", f"{unit} {count(round(series[-1], 1))}")

    def _write_line(self, selector: str, text: str) -> None:
        """Rewrite a one-line Static only when its text changed, and lay the screen out again only when its
        length did: a layout pass costs more than the rest of a redraw."""
        before = self._lines.get(selector)
        if text == before:
            return
        self._lines[selector] = text
        self.query_one(selector, Static).update(text, layout=before is None or len(text) != len(before))

    def _tick(self) -> None:
        if not self._ready:
            return
        rolled = self.throughput.roll()
        if rolled:
            self._show_totals()
        with self.app.batch_update():
            self._redraw(self.host.live, TIME_SECTIONS | ({"trends"} if rolled else set()))

    def _restyle(self) -> None:
        # Cells carry Rich styles resolved from the theme: once the new CSS applies, rewrite every cell once.
        self.call_after_refresh(self._rewrite_cells)

    def _rewrite_cells(self) -> None:
        for table in self.query(LiveTable):
            table.forget()
        if self._ready:
            with self.app.batch_update():
                self._redraw(self.host.live, set(SECTIONS))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that mean nothing for the selected row are left out of the footer (and do nothing): a router's
        model keys off its models' rows; load, unload and pin for a deployment loaded on demand, start/stop for
        one that is always up. A read-only console offers none of the keys that change anything."""
        if refuses(self, action, parameters):
            return False
        if action != "item" or not parameters:
            return True
        what = parameters[0]
        if what in ROUTER_MODEL_ACTIONS:
            key = self.providers.cursor_key()
            return key is not None and split_router_model_key(key) is not None
        if not self.fleet.has_focus or what not in FLEET_POLICY_ACTIONS:
            return True
        name = self._fleet_cursor_name()
        view = self.host.live.on_demand.get(name) if name is not None else None
        on_demand = view is not None and view["policy"]["mode"] == "on-demand"
        if what == "toggle":
            return not on_demand
        if what in ("load", "unload", "pin"):
            return on_demand
        if what == "detail":
            return name is not None  # any container: corral-core's detail route reads it from the engine
        return view is not None  # mode

    def _fleet_cursor_name(self) -> str | None:
        key = self.fleet.cursor_key()
        if key is None:
            return None
        found = next((d for d in self.host.live.fleet["deployments"] if d["container"] == key), None)
        return found["name"] if found is not None else key

    def action_provider_history(self) -> None:
        self.app.push_screen(ProviderHistoryScreen())

    def action_post_action(self, action_id: str) -> None:
        self.post_message(self.ActionRequested(action_id))

    def action_item(self, action: str) -> None:
        tables = (
            ("fleet", self.fleet),
            ("providers", self.providers),
            ("keys", self.keys),
            ("jobs", self.jobs),
            ("requests", self.requests),
        )
        for section, table in tables:
            if table.has_focus and (key := table.cursor_key()) is not None:
                self.post_message(self.ItemAction(section, key, action))

    def action_cancel_request(self) -> None:
        request_id = self.requests.cursor_key()
        if request_id is not None and finished_request_id(request_id) is not None:
            self.notify("That request has finished: there is nothing to cancel.", severity="warning")
            return
        if request_id is not None:
            self.post_message(self.CancelRequest(request_id))
