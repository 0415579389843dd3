"""The logs screen on a real deployment: llama-server in a container, followed through corral-core's log route
with the engine's timestamps, and followed again from a preset."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest
import pytest_asyncio
from textual.app import App

from console.live_state import LiveState
from console.screens.logs import LogsScreen
from gateway_core.client import CorralClient, CorralError
from gateway_core.fleet.manager import FleetManager
from gateway_core.fleet.systemd import follow_journal_command, journal_line
from tests.testbed import CorralDaemon, free_port
from tests.testbed.waiting import wait_for_async


class Host(App[None]):
    def __init__(self, client: CorralClient) -> None:
        super().__init__()
        self.client = client
        self.live = LiveState()


async def first_line(lines: AsyncGenerator[str, None]) -> str:
    async with contextlib.aclosing(lines):
        async for line in lines:
            return line
    return ""


@pytest.fixture
def name(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"logs-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.containers.get(f"corral-{name}").remove(force=True)


@pytest_asyncio.fixture
async def deployed(
    fleet_daemon: CorralDaemon, llama_server_image: str, tmp_path: Path, name: str
) -> AsyncIterator[CorralClient]:
    client = CorralClient(fleet_daemon.socket_path)
    model = tmp_path / "models" / "tiny-llama.gguf"  # where fleet_daemon put it
    await client.deploy(health_timeout_s=90, name=name, model_path=str(model), image=llama_server_image, ctx_size=512)
    yield client
    with contextlib.suppress(CorralError):
        await client.remove_deployment(name)
    await client.aclose()


@pytest.mark.docker
@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_the_screen_follows_a_deployments_log_with_its_times_and_again_from_a_preset(
    deployed: CorralClient, name: str
) -> None:
    app = Host(deployed)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = LogsScreen(name)
        await app.push_screen(screen)
        await wait_for_async(lambda: screen.view.line_count > 5, "llama-server's log lines", pause=pilot.pause)
        assert all(line.stamp for line in screen.buffer.lines)  # the engine stamped every line
        assert any("server is listening" in line.text or "listening" in line.text for line in screen.buffer.lines)
        await pilot.press("slash", *"listening", "enter")
        assert screen.buffer.matching
        await pilot.press("1")  # the last 100 lines: read afresh
        await wait_for_async(lambda: screen.view.line_count > 5, "the lines again", pause=pilot.pause)
        assert screen.view.line_count <= 100
        assert screen.buffer.matching  # the search still applies to what came back


@pytest.mark.docker
@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_the_follow_route_refuses_a_since_it_cannot_read(deployed: CorralClient, name: str) -> None:
    with pytest.raises(CorralError) as refused:
        await first_line(deployed.follow_logs(name, since="yesterday-ish"))
    assert refused.value.status == 400
    assert "since" in refused.value.message
    assert "7d" in refused.value.message  # it says what it does read


@pytest.mark.docker
@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_a_followed_log_since_a_minute_ago_starts_with_recent_lines_only(
    deployed: CorralClient, name: str
) -> None:
    lines: list[str] = []
    async with contextlib.aclosing(deployed.follow_logs(name, since="1m", timestamps=True)) as stream:
        async for line in stream:
            lines.append(line)
            if len(lines) >= 3:
                break
    assert all(line[:4].isdigit() and "Z " in line[:40] for line in lines)
    # A start in the future lists none of the lines already written (a quiet server writes no new ones).
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(first_line(deployed.follow_logs(name, since="4102444800")), timeout=1.0)


def test_a_journal_entry_reads_as_a_stamped_line():
    entry = '{"__REALTIME_TIMESTAMP": "1764583236123456", "MESSAGE": "main: server is listening"}'
    assert journal_line(entry, timestamps=True) == "2025-12-01T10:00:36.123456Z main: server is listening"
    assert journal_line(entry, timestamps=False) == "main: server is listening"
    as_bytes = '{"__REALTIME_TIMESTAMP": "0", "MESSAGE": [104, 105, 255]}'  # not UTF-8: journald sends bytes
    assert journal_line(as_bytes, timestamps=False) == "hi\ufffd"
    command = follow_journal_command("native", user=True, tail=100, since=1764583200.4)
    assert command == ["journalctl", "--user", "-u", "corral-native.service", "-f", "-o", "json",
                       "-n", "100", "--since", "@1764583200"]  # fmt: skip


@pytest.mark.llama_server
@pytest.mark.asyncio
async def test_a_systemd_deployments_log_file_is_followed_and_the_follower_stops_with_the_reader(
    systemd_fleet: FleetManager, tiny_model: Path, llama_server_binary: Path, tmp_path: Path
) -> None:
    fields = {"name": "native", "kind": "systemd", "model_path": str(tiny_model), "gpus": "none", "port": free_port(),
              "ctx_size": 512}  # fmt: skip
    options = {"binary": str(llama_server_binary), "log_dir": str(tmp_path / "logs")}
    await systemd_fleet.deploy(fields, 60, options)
    lines = await systemd_fleet.follow_logs("native", tail=5)
    seen = [await anext(lines) for _ in range(3)]
    assert all(isinstance(line, str) for line in seen)
    assert any(seen)  # llama-server's own lines, from the file its unit writes
    followers = lambda: [p for p in Path("/proc").glob("[0-9]*") if _is_tail_of(p, tmp_path)]  # noqa: E731
    assert followers()
    await lines.aclose()  # type: ignore[attr-defined]  # an async generator
    await wait_for_async(lambda: not followers(), "tail -F to stop with its reader")
    await systemd_fleet.remove("native")


def _is_tail_of(process: Path, logs: Path) -> bool:
    with contextlib.suppress(OSError):
        words = (process / "cmdline").read_bytes().split(b"\0")
        return words[:2] == [b"tail", b"-F"] and str(logs).encode() in words[-2]
    return False
