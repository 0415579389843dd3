"""GET /fleet/deployments/{name}/detail: everything corral-core knows of one deployment, secrets masked.

The console's detail view (Enter on a deployment) shows it beside what the event stream already holds (its load
state, its provider's health); `corral fleet` scripts may read it too.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

MASKED = "•••• (masked)"  # what a secret's value reads as: never the value, nor a piece of it


class HealthCheckView(TypedDict):
    """One run of the container's health check, as the engine keeps it (its last five)."""

    started_at: str | None  # ISO 8601
    exit_code: int | None
    output: str


class DeploymentDetailView(TypedDict):
    name: str
    kind: Literal["container", "systemd"]
    managed: bool  # one of Corral's deployments (else a llama-server container it found)
    image: str | None  # a systemd deployment runs no image
    container: str | None
    container_id: str | None
    state: str  # the engine's state (running, exited, ...), or "systemd" for a unit
    health: str  # healthy, unhealthy, starting, none
    command: list[str]  # how llama-server is started: the entrypoint and its arguments
    environment: dict[str, str]  # name -> value, with every secret's value MASKED
    spec: dict[str, Any] | None  # the DeploymentSpec's view, for Corral's deployments
    started_at: str | None
    finished_at: str | None
    exit_code: int | None  # the last exit's code, once it has exited at least once
    restart_count: int
    oom_killed: bool
    error: str  # the engine's own error for its last start, "" when none
    health_checks: list[HealthCheckView]
    recent_errors: list[str]  # its log's recent lines that name an error or a failure, newest last
