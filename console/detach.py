"""Start a background process that outlives the console (the daemon, the demo server).

It runs in its own session, so closing the terminal does not stop it, with its output appended
to a log file. A reaper thread waits on it, so it never lingers as a zombie of a long-lived
console and Python never warns about a child left running.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path


def spawn_detached(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"--- {stamp} corral started: {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    threading.Thread(target=process.wait, name=f"reaper-{process.pid}", daemon=True).start()
    return process
