"""One deployment in full: its load state (why it failed, its policy, use and memory, the recent load decisions
about it), its provider's health, and from corral-core its launch command, image, environment (secrets masked),
spec, health checks, last exit and recent errors. It follows the event stream while it shows."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

from console.detail_format import Section, deployment_sections, error_lines, provider_sections, render
from console.format import ago, latency, utc_time
from console.live_state import LiveState
from console.screens.detail import DetailScreen
from console.widgets.live_table import Clock
from console.widgets.on_demand import decision_line, memory_words, policy_words, state_words
from gateway_core.contracts.detail_views import DeploymentDetailView
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


def load_sections(
    name: str,
    view: OnDemandView | None,
    container: ContainerView | None,
    decisions: list[LoadDecisionView],
    now: float,
) -> list[Section]:
    """Its load state from the event stream: the facts, why it failed, and the recent load decisions."""
    if view is None:
        return [("load state", [f"corral-core lists no load state for {name}: it is not one of Corral's deployments."])]
    sections: list[Section] = [("load state", detail_facts(view, container, now))]
    if view["state"] == "failed" and view["reason"]:
        sections.append(("why it failed (the last lines of its log)", view["reason"].rstrip().splitlines()))
    mine = [d for d in decisions if name in (d["deployment"], d["for_deployment"])][-DECISIONS_SHOWN:]
    lines = [f"{utc_time(decision['at'])}  {decision_line(decision)}" for decision in reversed(mine)]
    sections.append(("recent load decisions", lines or ["none since the console connected"]))
    return sections


def detail_text(
    name: str,
    view: OnDemandView | None,
    container: ContainerView | None,
    decisions: list[LoadDecisionView],
    now: float,
) -> Text:
    return render(load_sections(name, view, container, decisions, now))


class DeploymentDetailScreen(DetailScreen):
    """Its load state and its provider's health from the event stream; its command, environment, health checks
    and log errors from corral-core's detail route; its recent failed requests from the archive."""

    KIND = "deployment"
    LIVE_SECTIONS = frozenset({"on_demand", "decisions", "fleet", "providers"})

    def __init__(self, name: str, now: Clock = time.time) -> None:
        super().__init__(name, now)
        self.deployment = name

    async def fetch(self) -> dict[str, Any]:
        found: dict[str, Any] = {"detail": await self.host.client.deployment_detail(self.deployment)}
        if self.deployment in self.host.live.providers:
            found["recent_errors"] = await self.recent_errors(provider=self.deployment)
        return found

    def _container(self, live: LiveState) -> ContainerView | None:
        deployments = live.fleet["deployments"]
        return next((d for d in deployments if d["managed"] and d["name"] == self.deployment), None)

    def sections(self, live: LiveState, now: float) -> list[Section]:
        view = live.on_demand.get(self.deployment)
        sections = load_sections(self.deployment, view, self._container(live), list(live.decisions), now)
        provider = live.providers.get(self.deployment)
        if provider is not None:
            health = dict(provider_sections(provider, now))["health"]
            sections.append(("its provider's health", health))
        detail: DeploymentDetailView | None = self.fetched.get("detail")
        if detail is not None:
            sections += deployment_sections(detail)
        if provider is not None and "recent_errors" in self.fetched:
            sections.append(("recent failed requests (the archive)", error_lines(self.fetched["recent_errors"])))
        return sections

    def data(self, live: LiveState) -> dict[str, Any]:
        return {
            "load_state": live.on_demand.get(self.deployment),
            "container": self._container(live),
            "provider": live.providers.get(self.deployment),
        }
