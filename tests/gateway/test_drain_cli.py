"""`corral providers drain|undrain NAME` and `corral fleet drain|undrain NAME`, run as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.testbed.daemon import CorralDaemon
from tests.testbed.waiting import wait_for

pytestmark = pytest.mark.llama_server

ROOT = Path(__file__).resolve().parents[2]
PROMPT = [{"role": "user", "content": "hi"}]
# With context shift the tiny model generates until the client leaves: a request held in flight for the test.
ENDLESS = {"model": "tiny", "messages": PROMPT, "stream": True, "max_tokens": 1_000_000, "ignore_eos": True}


def corral_command(socket_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "console.cli", "--socket", str(socket_path), *args]


def corral(socket_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        corral_command(socket_path, *args), capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )


def state(daemon: CorralDaemon, name: str) -> str:
    return str(daemon.admin_call("GET", f"/providers/{name}").json()["state"])


@pytest.fixture
def served(corral_daemon: CorralDaemon, llama_servers: Any) -> tuple[CorralDaemon, str]:
    (server,) = llama_servers(1, extra_args=("--context-shift",))
    corral_daemon.add_provider("gpu0", server.base_url)
    return corral_daemon, corral_daemon.create_key("app")


@pytest.fixture
def held_request(served: tuple[CorralDaemon, str]) -> Iterator[httpx.Response]:
    """A stream in flight on gpu0 until the test closes it (the client leaving ends it)."""
    daemon, key = served
    with httpx.stream(
        "POST",
        daemon.base_url + "/v1/chat/completions",
        json=ENDLESS,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as response:
        lines = response.iter_lines()
        for _ in range(5):
            next(lines)
        yield response


def test_providers_drain_and_undrain_say_what_happened_and_list_shows_the_state(served):
    daemon, _ = served

    drained = corral(daemon.socket_path, "providers", "drain", "gpu0")
    listed = corral(daemon.socket_path, "providers", "list")

    assert drained.returncode == 0, drained.stderr
    assert "gpu0 is drained" in drained.stdout
    assert "corral providers undrain gpu0" in drained.stdout
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "TYPE", "STATE"]
    assert row.split()[:3] == ["gpu0", "llama-server", "drained"]

    undrained = corral(daemon.socket_path, "providers", "undrain", "gpu0", "--json")
    assert undrained.returncode == 0, undrained.stderr
    view = json.loads(undrained.stdout)
    assert (view["name"], view["state"], view["draining"]) == ("gpu0", "ready", False)


def test_drain_with_a_request_in_flight_says_draining_and_wait_returns_once_it_is_drained(served, held_request):
    daemon, _ = served

    drained = corral(daemon.socket_path, "providers", "drain", "gpu0")
    assert drained.returncode == 0, drained.stderr
    assert "gpu0 is draining (1 request in flight, left to finish)" in drained.stdout

    waiting = subprocess.Popen(
        corral_command(daemon.socket_path, "providers", "drain", "gpu0", "--wait", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        held_request.close()  # the request in flight ends
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    view = json.loads(out)
    assert (view["state"], view["in_flight"]) == ("drained", 0)


def test_drain_wait_gives_up_after_its_timeout_and_exits_1_saying_what_is_in_flight(served, held_request):
    daemon, _ = served

    result = corral(daemon.socket_path, "providers", "drain", "gpu0", "--wait", "--timeout", "0.5")

    assert result.returncode == 1
    assert "gpu0 still has 1 request in flight after 0.5 s" in result.stderr
    assert state(daemon, "gpu0") == "draining"


def test_fleet_drain_and_undrain_a_deployment_by_its_name(served):
    daemon, _ = served

    drained = corral(daemon.socket_path, "fleet", "drain", "gpu0", "--json")
    assert drained.returncode == 0, drained.stderr
    assert json.loads(drained.stdout)["state"] == "drained"
    assert state(daemon, "gpu0") == "drained"

    undrained = corral(daemon.socket_path, "fleet", "undrain", "gpu0")
    assert undrained.returncode == 0, undrained.stderr
    assert "gpu0 undrained" in undrained.stdout
    wait_for(lambda: state(daemon, "gpu0") == "ready", "gpu0 to be ready")


@pytest.mark.parametrize(("group", "listing"), [("providers", "corral providers list"), ("fleet", "corral fleet list")])
def test_draining_an_unknown_name_exits_1_saying_how_to_list_the_names(corral_daemon, group, listing):
    result = corral(corral_daemon.socket_path, group, "drain", "nope")

    assert result.returncode == 1
    assert "nope" in result.stderr
    assert listing in result.stderr


@pytest.mark.parametrize(
    "args", [("providers", "drain"), ("fleet", "undrain"), ("providers", "drain", "x", "--wait", "--timeout", "soon")]
)
def test_drain_without_a_name_or_with_a_bad_timeout_is_a_usage_error(tmp_path, args):
    result = corral(tmp_path / "none.sock", *args)

    assert result.returncode == 2
