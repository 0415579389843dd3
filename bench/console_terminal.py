"""The console on a pseudo-terminal: start `bench.console_probe`, type keys into it, and read what it drew.

Keys go in as the bytes a terminal sends (xterm), so Textual's own driver reads and parses them. Its output is
drained and counted, as a terminal would take it. Frame records come back on a pipe, stamped with the monotonic
clock, which both processes share, so a key's latency is a frame's time minus the time the key was written.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.processes import cpu_seconds
from tests.testbed.child_processes import die_with_parent, stop_process

Record = dict[str, Any]
# What an xterm sends for each key the benchmark presses; anything else is sent as typed.
KEY_BYTES = {
    "down": b"\x1b[B",
    "up": b"\x1b[A",
    "tab": b"\t",
    "shift+tab": b"\x1b[Z",
    "f2": b"\x1bOQ",
    "f3": b"\x1bOR",
    "backspace": b"\x7f",
    "enter": b"\r",
    "ctrl+a": b"\x01",
    "ctrl+k": b"\x0b",
    "ctrl+l": b"\x0c",
    "ctrl+q": b"\x11",
}
OUTPUT_TAIL = 4096


class ConsoleTerminal:
    """One probe process on a pty of `size` (columns, rows)."""

    def __init__(self, socket_path: Path, data_dir: Path, workdir: Path, size: tuple[int, int] = (120, 40)) -> None:
        self.socket_path = socket_path
        self.data_dir = data_dir
        self.workdir = workdir
        self.size = size
        self.process: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0
        self.output_bytes = 0
        self.output_tail = b""
        self.records: list[Record] = []
        self._changed = threading.Condition()
        self._master = -1
        self._threads: list[threading.Thread] = []

    def start(self) -> ConsoleTerminal:
        master, slave = pty.openpty()
        columns, rows = self.size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        records_read, records_write = os.pipe()
        config = self.workdir / "console-config"  # no user settings or themes
        env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "XDG_CONFIG_HOME": str(config)}
        command = [
            sys.executable,
            "-m",
            "bench.console_probe",
            "--socket",
            str(self.socket_path),
            "--data-dir",
            str(self.data_dir),
            "--records-fd",
            str(records_write),
        ]
        self.spawned_at = time.monotonic()
        with (self.workdir / "console-stdout.log").open("ab") as log:
            # Textual draws on stderr and reads stdin: both are the terminal.
            self.process = subprocess.Popen(
                command,
                stdin=slave,
                stdout=log,
                stderr=slave,
                env=env,
                pass_fds=(records_write,),
                preexec_fn=die_with_parent,
            )
        os.close(slave)
        os.close(records_write)
        self._master = master
        for target, fd in ((self._drain_output, master), (self._read_records, records_read)):
            thread = threading.Thread(target=target, args=(fd,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def press(self, key: str) -> float:
        """Type one key; returns when it was written (monotonic)."""
        data = KEY_BYTES.get(key, key.encode())
        written_at = time.monotonic()
        os.write(self._master, data)
        return written_at

    def wait_for(self, condition: Callable[[Record], bool], since: float, timeout_s: float) -> Record | None:
        """The first frame drawn at or after `since` for which `condition` holds; None after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        checked = 0
        with self._changed:
            while True:
                for record in self.records[checked:]:
                    if record["t"] >= since and condition(record):
                        return record
                checked = len(self.records)
                left = deadline - time.monotonic()
                if left <= 0 or not self.running():
                    return None
                self._changed.wait(left)

    def latest(self) -> Record | None:
        with self._changed:
            return self.records[-1] if self.records else None

    def frames_between(self, start: float, end: float) -> int:
        with self._changed:
            return sum(1 for record in self.records if start <= record["t"] < end)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            self.press("ctrl+q")
            assert self.process is not None
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                stop_process(self.process)
        if self._master >= 0:
            os.close(self._master)
            self._master = -1
        for thread in self._threads:
            thread.join(timeout=5)

    def _drain_output(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO once the probe has exited and closed the terminal
                return
            if not data:
                return
            self.output_bytes += len(data)
            self.output_tail = (self.output_tail + data)[-OUTPUT_TAIL:]

    def _read_records(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                record = orjson.loads(line)
                with self._changed:
                    self.records.append(record)
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()
