"""One deployment's load state in full: why it failed (its log's last lines), its policy, use and memory, and the
recent load decisions about it. It follows the event stream while it shows."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from console.format import ago, latency, utc_time
from console.live_state import LiveState
from console.screens.base import LiveScreen
from console.screens.history_detail import HISTORY_CSS
from console.widgets.key_hints import KeyHints
from console.widgets.live_table import Clock
from console.widgets.on_demand import decision_line, memory_words, policy_words, state_words
from gateway_core.contracts.fleet_views import ContainerView, LoadDecisionView, OnDemandView

DECISIONS_SHOWN = 10


def runs_as(view: OnDemandView, container: ContainerView | None) -> str:
    if view["kind"] == "systemd":
        return "a systemd unit"
    if container is None:
        return "a container (the engine lists none for it)"
    port = f", port {container['port']}" if container["port"] else ""
    return f"container {container['container']} ({container['state']}{port})"


def detail_facts(view: OnDemandView, container: ContainerView | None, now: float) -> list[tuple[str, str]]:
    loaded_at = view["last_loaded_at"]
    facts = [
        ("state", state_words(view)),
        ("policy", policy_words(view["policy"])),
        ("runs as", runs_as(view, container)),
        ("requests", f"{view['in_flight']} in flight, {view['waiting']} waiting for it to load"),
        ("last used", ago(view["last_used_at"], now)),
        ("last loaded", "never" if loaded_at is None else f"{utc_time(loaded_at)} ({ago(loaded_at, now)})"),
        ("last load took", latency(view["last_load_s"])),
        ("GPU memory", memory_words(view)),
        ("GPUs", ", ".join(str(index) for index in view["gpus"]) or "none (CPU)"),
    ]
    if container is not None and container["model"]:
        facts.append(("model file", container["model"]))
    return facts


def detail_text(
    name: str,
    view: OnDemandView | None,
    container: ContainerView | None,
    decisions: list[LoadDecisionView],
    now: float,
) -> Text:
    text = Text()
    if view is None:
        text.append(f"corral-core lists no load state for {name}: it is not one of Corral's deployments.\n")
        return text
    facts = detail_facts(view, container, now)
    width = max(len(label) for label, _ in facts)
    for label, value in facts:
        text.append(label.ljust(width), style="bold")
        text.append(f"  {value}\n")
    if view["state"] == "failed" and view["reason"]:
        text.append("\nwhy it failed (the last lines of its log):\n", style="bold")
        text.append(view["reason"].rstrip() + "\n")
    mine = [d for d in decisions if name in (d["deployment"], d["for_deployment"])][-DECISIONS_SHOWN:]
    text.append("\nrecent load decisions\n", style="bold")
    if not mine:
        text.append("none since the console connected\n")
    for decision in reversed(mine):
        text.append(f"{utc_time(decision['at'])}  {decision_line(decision)}\n")
    return text


class DeploymentDetailScreen(LiveScreen):
    CSS_PATH: ClassVar[str] = HISTORY_CSS  # the History detail's layout: a title line over a scrolling body
    AUTO_FOCUS = "#detail-scroll"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,i", "back", "Back", id="deployment.back", tooltip="Back to the dashboard"),
    ]

    def __init__(self, name: str, now: Clock = time.time) -> None:
        super().__init__()
        self.deployment = name
        self.now = now

    def compose(self) -> ComposeResult:
        yield Static(f"Deployment {self.deployment}", id="detail-title", markup=False)
        with VerticalScroll(id="detail-scroll"):
            yield Static("", id="detail-facts", markup=False)
        yield KeyHints()

    def on_mount(self) -> None:
        self._show(self.host.live)
        self.set_interval(1.0, lambda: self._show(self.host.live))  # "last used" ages without events

    def live_changed(self, live: LiveState, changed: set[str]) -> None:
        if changed & {"on_demand", "decisions", "fleet"}:
            self._show(live)

    def _show(self, live: LiveState) -> None:
        view = live.on_demand.get(self.deployment)
        container = next((d for d in live.fleet["deployments"] if d["managed"] and d["name"] == self.deployment), None)
        text = detail_text(self.deployment, view, container, list(live.decisions), self.now())
        self.query_one("#detail-facts", Static).update(text)

    def action_back(self) -> None:
        self.dismiss()
