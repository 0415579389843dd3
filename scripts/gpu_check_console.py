"""GPU check, by hand on a box with an NVIDIA GPU (CI has none): the real console against a real corral-core.

If torch is installed, a process of it loads the GPU, so utilization, memory and the process list move. Prints
what the dashboard's GPU panel shows and saves screenshots of the dashboard and the chat to $OUT (default
/tmp/out); exits non-zero when no GPU row appears.

    PYTHONPATH=. python3 scripts/gpu_check_console.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from console.app import CorralApp

OUT = Path(os.environ.get("OUT", "/tmp/out"))
WAIT_S = 30.0
LOAD = """
import torch, time
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
held = torch.empty(6 * 1024**3, dtype=torch.uint8, device="cuda")
end = time.time() + 40
while time.time() < end:
    for _ in range(50):
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize()
"""


async def look(socket_path: Path, data_dir: Path) -> int:
    """The dashboard until the GPU panel has rows (and the load has run a few seconds); returns the row count."""
    app = CorralApp(socket_path, data_dir, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        started = time.monotonic()
        while time.monotonic() - started < WAIT_S:
            await pilot.pause(0.5)
            if screen.gpus.row_count and time.monotonic() - started > 8:
                break
        print("connected:", app.connected, "| panel:", screen.query_one("#gpus").border_title)
        print("columns:", " | ".join(screen.gpus.column_keys))
        for key in screen.gpus.row_keys:
            print("row", key, "|", " | ".join(str(screen.gpus.get_cell(key, c)) for c in screen.gpus.column_keys))
        app.save_screenshot("dashboard_gpu.svg", str(OUT))
        await pilot.press("f3")
        await pilot.pause(1.0)
        app.save_screenshot("chat_gpu.svg", str(OUT))
        return screen.gpus.row_count


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="corral-gpu-check-"))
    socket_path = data_dir / "admin.sock"
    with (data_dir / "core.log").open("w") as log:
        core = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway_core.cli",
                "--data-dir",
                str(data_dir),
                "--listen",
                "127.0.0.1:18800",
                "--socket",
                str(socket_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    load = subprocess.Popen([sys.executable, "-c", LOAD], stderr=subprocess.DEVNULL)  # nothing happens without torch
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        rows = asyncio.run(look(socket_path, data_dir))
    finally:
        load.kill()
        core.terminate()
        core.wait(30)
    print("corral-core's log:", (data_dir / "core.log").read_text()[-800:], sep="\n")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
