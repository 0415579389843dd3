"""The detail view at 80x24 and 120x40: a deployment with what corral-core's detail route adds (its command,
masked environment, spec, health checks, errors), and a provider. Fixed data and clock, no daemon.

After a deliberate visual change: `pytest tests/console/test_detail_snapshots.py --snapshot-update`, then look at
the SVGs under tests/console/__snapshots__/ before committing them.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from console.screens.deployment_detail import DeploymentDetailScreen
from console.screens.detail import ProviderDetailScreen
from gateway_core.contracts.detail_views import MASKED, DeploymentDetailView
from gateway_core.contracts.history_views import HistoryRowView
from tests.console.dashboard_data import NOW, DashboardHarness, history_row, on_demand_box

SIZES = [(80, 24), (120, 40)]


def chat_detail() -> DeploymentDetailView:
    return {
        "name": "chat-7b",
        "kind": "container",
        "managed": True,
        "image": "ghcr.io/ggml-org/llama.cpp:server-cuda",
        "container": "corral-chat-7b",
        "container_id": "3f2a9c41d0be",
        "state": "running",
        "health": "healthy",
        "command": ["/app/llama-server", "--api-key", MASKED, "--jinja"],
        "environment": {
            "LLAMA_ARG_MODEL": "/models/qwen2.5-7b-instruct-q4_k_m.gguf",
            "LLAMA_ARG_ALIAS": "chat-7b",
            "LLAMA_ARG_CTX_SIZE": "8192",
            "LLAMA_ARG_N_PARALLEL": "4",
            "HF_TOKEN": MASKED,
        },
        "spec": {"name": "chat-7b", "ctx_size": 8192, "parallel": 4, "gpus": [0], "extra_args": ["--jinja"]},
        "started_at": "2025-10-09T07:00:00+00:00",
        "finished_at": "2025-10-09T06:59:40+00:00",
        "exit_code": 137,
        "restart_count": 1,
        "oom_killed": False,
        "error": "",
        "health_checks": [
            {"started_at": "2025-10-09T08:53:10Z", "exit_code": 0, "output": "ok"},
            {"started_at": "2025-10-09T08:53:20Z", "exit_code": 0, "output": "ok"},
        ],
        "recent_errors": ["srv  params_from_: error: the request exceeds the available context size (8192 tokens)"],
    }


def failures() -> list[HistoryRowView]:
    row = history_row("req-7f3a", model="qwen2.5-7b", provider="chat-7b")
    return [{**row, "status": 400, "error_message": "the request exceeds the available context size"}]


async def shown(pilot: Pilot[None], screen: DeploymentDetailScreen | ProviderDetailScreen, *keys: str) -> None:
    await pilot.app.push_screen(screen)
    screen.post_message(screen.Fetched({"detail": chat_detail(), "recent_errors": failures()}, []))
    await pilot.pause()
    await pilot.press(*keys)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_a_deployments_detail(snap_compare, size):
    async def open_it(pilot: Pilot[None]) -> None:
        # Its end: what the detail route adds (the load state on top is in the on-demand snapshots).
        await shown(pilot, DeploymentDetailScreen("chat-7b", now=lambda: NOW), "end")

    assert snap_compare(DashboardHarness(on_demand_box()), terminal_size=size, run_before=open_it)


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
def test_a_providers_detail(snap_compare, size):
    async def open_it(pilot: Pilot[None]) -> None:
        await shown(pilot, ProviderDetailScreen("chat-7b", now=lambda: NOW))

    assert snap_compare(DashboardHarness(on_demand_box()), terminal_size=size, run_before=open_it)
