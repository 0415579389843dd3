"""`corral fleet logs NAME` run as a user runs it, against a real corral-core and a real llama-server container:
the last N lines (`--tail`), following (`-f`) from a moment on (`--since`) with each line's time (`--timestamps`).

A follower runs until it is stopped, so it runs as a process whose lines a thread collects; a test that needs a
new line makes llama-server write one (a completion request logs its slot's work).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
import httpx
import pytest

from gateway_core.client import CorralClient, CorralError
from tests.console.test_cli import ROOT, corral
from tests.testbed import CorralDaemon, free_port
from tests.testbed.waiting import wait_for

# The engine's stamp: RFC 3339 in UTC, to the nanosecond, then a space and the line as llama-server wrote it.
STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z (.*)$")


@dataclass
class Deployment:
    daemon: CorralDaemon
    name: str
    port: int  # llama-server's, on 127.0.0.1

    def logs(self, *args: str) -> subprocess.CompletedProcess[str]:
        return corral(self.daemon.socket_path, "fleet", "logs", self.name, *args)

    def make_a_new_line(self) -> None:
        """A completion request: llama-server logs the slot that served it."""
        answer = httpx.post(
            f"http://127.0.0.1:{self.port}/completion", json={"prompt": "Hi", "n_predict": 1}, timeout=60
        )
        assert answer.status_code == 200, answer.text


class Follower:
    """`corral fleet logs NAME -f …` as a process; `lines` fills as it prints."""

    def __init__(self, deployment: Deployment, *args: str) -> None:
        command = [sys.executable, "-m", "console.cli", "--socket", str(deployment.daemon.socket_path)]
        self.process = subprocess.Popen(
            [*command, "fleet", "logs", deployment.name, "-f", *args],
            stdout=subprocess.PIPE,
            text=True,
            errors="replace",
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def follower() -> Iterator[type[Follower]]:
    """Start followers with it; each is stopped at the end of the test."""
    started: list[Follower] = []

    class Tracked(Follower):
        def __init__(self, deployment: Deployment, *args: str) -> None:
            super().__init__(deployment, *args)
            started.append(self)

    yield Tracked
    for each in started:
        each.stop()


@pytest.fixture(scope="module")
def deployment(
    docker_client: docker.DockerClient,
    llama_server_image: str,
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """One llama-server container for the module: its tests only read its log and send it a request."""
    daemon = CorralDaemon(tmp_path_factory.mktemp("fleet-logs")).start()
    name, port = f"logs-cli-{uuid.uuid4().hex[:8]}", free_port()

    async def deploy() -> None:
        async with CorralClient(daemon.socket_path) as client:
            await client.deploy(
                health_timeout_s=90,
                name=name,
                model_path=str(tiny_model),
                image=llama_server_image,
                ctx_size=512,
                port=port,
            )

    async def remove() -> None:
        async with CorralClient(daemon.socket_path) as client:
            await client.remove_deployment(name)

    try:
        asyncio.run(deploy())
        yield Deployment(daemon, name, port)
    finally:
        with contextlib.suppress(CorralError):
            asyncio.run(remove())
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(f"corral-{name}").remove(force=True)
        daemon.stop()


def stamp_of(line: str) -> datetime:
    match = STAMPED.match(line)
    assert match is not None, f"not stamped: {line!r}"
    fraction = (match.group(2) or "").ljust(6, "0")[:6]  # Python reads microseconds, the engine writes nanoseconds
    return datetime.fromisoformat(f"{match.group(1)}.{fraction}+00:00")


def old_lines(deployment: Deployment) -> list[str]:
    shown = deployment.logs("--tail", "200")
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.splitlines()


pytestmark = [pytest.mark.docker, pytest.mark.llama_server]


def test_tail_3_prints_the_last_three_lines_and_with_f_then_only_new_ones(
    deployment: Deployment, follower: type[Follower]
) -> None:
    before = old_lines(deployment)
    assert len(before) > 3

    shown = deployment.logs("--tail", "3")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == before[-3:]

    following = follower(deployment, "--tail", "3")
    wait_for(lambda: len(following.lines) >= 3, "the last three lines")
    deployment.make_a_new_line()
    wait_for(lambda: len(following.lines) > 3, "the request's lines")
    assert following.lines[:3] == before[-3:]
    assert all(" slot " in line for line in following.lines[3:])  # the request's, not a fourth earlier line


def test_tail_all_with_f_prints_every_earlier_line(deployment: Deployment, follower: type[Follower]) -> None:
    before = old_lines(deployment)
    assert len(before) < 200  # so `--tail 200` read them all

    following = follower(deployment, "--tail", "all")
    wait_for(lambda: len(following.lines) >= len(before), "every line")
    assert following.lines == before


def test_since_0_is_the_beginning_of_time_and_prints_every_earlier_line(
    deployment: Deployment, follower: type[Follower]
) -> None:
    before = old_lines(deployment)
    following = follower(deployment, "--since", "0")  # Docker refuses since=0 itself: corral-core leaves it out
    wait_for(lambda: len(following.lines) >= len(before), "every line")
    assert following.lines == before


def test_since_a_moment_after_the_earlier_lines_prints_none_of_them_only_what_comes_after(
    deployment: Deployment, follower: type[Follower]
) -> None:
    before = old_lines(deployment)
    assert any("listening" in line for line in before)  # llama-server's start, written once
    since = datetime.now(UTC)

    following = follower(deployment, "--since", since.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "--timestamps")
    deployment.make_a_new_line()
    wait_for(lambda: following.lines, "the request's lines")
    assert all(stamp_of(line) >= since for line in following.lines)
    assert not any("listening" in line for line in following.lines)


def test_timestamps_start_each_line_with_its_rfc_3339_time(deployment: Deployment, follower: type[Follower]) -> None:
    before = old_lines(deployment)

    following = follower(deployment, "--tail", "5", "--timestamps")
    wait_for(lambda: len(following.lines) >= 5, "five stamped lines")
    for line, bare in zip(following.lines[:5], before[-5:], strict=True):
        match = STAMPED.match(line)
        assert match is not None, f"not stamped: {line!r}"
        assert match.group(3) == bare
        assert stamp_of(line) <= datetime.now(UTC)


def test_an_unreadable_since_is_corral_cores_400_message_and_exit_1(deployment: Deployment) -> None:
    refused = deployment.logs("-f", "--since", "yesterday-ish")

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "since" in refused.stderr
    assert "'yesterday-ish' is not a time" in refused.stderr
    assert "7d" in refused.stderr  # it says what it reads


def test_since_timestamps_and_tail_all_without_f_say_they_need_it(deployment: Deployment) -> None:
    for options in (["--since", "15m"], ["--timestamps"], ["--tail", "all"]):
        refused = deployment.logs(*options)
        assert refused.returncode == 2, options
        assert "need -f" in refused.stderr
        assert refused.stdout == ""
