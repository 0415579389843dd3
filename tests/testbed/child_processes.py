"""Child processes the testbed and the benchmark start: tied to their parent, stopped politely then firmly."""

from __future__ import annotations

import ctypes
import signal
import subprocess


def die_with_parent() -> None:
    """A `preexec_fn`: Linux kills the child if the test or benchmark process dies without cleaning up."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str] | None, grace_s: float = 5.0) -> None:
    """SIGTERM, wait up to `grace_s`, then SIGKILL; nothing if it has already exited."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
