"""Start a background process that outlives the console (the daemon, the demo server).

posix_spawn in a new session, not subprocess.Popen: a Popen object for a process we never wait
on warns when it is collected, and the process must not die with the console's terminal.
"""

from __future__ import annotations

import os
from pathlib import Path


def spawn_detached(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Run `command` with stdin from /dev/null and both outputs appended to `log_path`; return its pid."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    try:
        return os.posix_spawnp(
            command[0], command, env if env is not None else dict(os.environ),
            file_actions=[(os.POSIX_SPAWN_DUP2, null_fd, 0), (os.POSIX_SPAWN_DUP2, log_fd, 1),
                          (os.POSIX_SPAWN_DUP2, log_fd, 2)],
            setsid=True,
        )
    finally:
        os.close(log_fd)
        os.close(null_fd)


def exit_status(pid: int) -> int | None:
    """The exit code if our child `pid` has ended (reaping it), else None while it runs."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return -1  # not our child any more, or already reaped
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)
