"""The first-run demo: a local llama-server running a tiny generated model, registered as a provider.

Everything goes through corral-core's admin API; the demo server is a detached process that
outlives the console, like the daemon itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import httpx

from gateway_core.client import CorralClient
from gateway_core.fleet.manager import free_port
from gateway_core.settings import BinaryNotFound, llama_server_binary

from .demo_model import write_tiny_model
from .detach import spawn_detached

DEMO_PROVIDER = "demo"
DEMO_MODEL = "tiny"
START_TIMEOUT_S = 30.0


class DemoUnavailable(RuntimeError):
    pass


def _server_command(model: Path, port: int) -> list[str]:
    if importlib.util.find_spec("xllamacpp") is not None:
        return [sys.executable, "-m", "console.demo_server", str(model), str(port)]
    try:
        binary = llama_server_binary()
    except BinaryNotFound:
        raise DemoUnavailable(
            "the demo needs xllamacpp (`pip install 'corral[demo]'`) or a llama-server binary "
            "(set CORRAL_LLAMA_SERVER or put llama-server on PATH)"
        ) from None
    return [
        binary,
        "--model",
        str(model),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--alias",
        DEMO_MODEL,
        "--parallel",
        "4",
        "--threads",
        "1",
    ]


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


async def start_demo(client: CorralClient, data_dir: Path) -> str:
    """Make sure the demo provider is up; returns a line saying what happened."""
    providers = {p["name"]: p for p in await client.providers()}
    demo = providers.get(DEMO_PROVIDER)
    if demo is not None and demo["state"] == "ready":
        return f"demo provider '{DEMO_PROVIDER}' is ready: try the chat with model '{DEMO_MODEL}'"
    demo_dir = data_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    model = demo_dir / "tiny-llama.gguf"
    if not model.exists():
        await asyncio.to_thread(write_tiny_model, model)
    port = free_port(18080)
    log_path = demo_dir / "llama-server.log"
    process = await asyncio.to_thread(spawn_detached, _server_command(model, port), log_path)
    base_url = f"http://127.0.0.1:{port}"
    await _wait_healthy(base_url, process, log_path)
    await asyncio.to_thread((demo_dir / "llama-server.pid").write_text, f"{process.pid}\n")
    if DEMO_PROVIDER in providers:
        await client.update_provider(DEMO_PROVIDER, base_url=base_url)
    else:
        await client.add_provider(
            name=DEMO_PROVIDER, type="llama-server", base_url=base_url, models={DEMO_MODEL: DEMO_MODEL}
        )
    return f"demo llama-server started on {base_url} and added as provider '{DEMO_PROVIDER}'"
