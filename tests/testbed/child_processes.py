"""Child processes the testbed and the benchmark start: tied to their parent, stopped politely then firmly."""

from __future__ import annotations

import ctypes
import os
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


def children_of(pid: int) -> list[int]:
    """The processes `pid` started that are still its children (Linux /proc)."""
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def process_ended(pid: int) -> bool:
    """Every thread of `pid` has exited. Not just "its pid is gone or a zombie": a process whose main thread has
    returned shows as a zombie while its other threads still run (the orphaned archive writer does just that)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return True
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            continue
        if state not in ("Z", "X"):
            return False
    return True
