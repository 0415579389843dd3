"""A stand-in for systemctl where systemd is not PID 1 (a container, CI): it runs the units Corral writes.

`SystemctlDouble` is what SystemdManager's `run` calls. It reads the unit file Corral wrote into its unit
directory and runs that unit's ExecStart as a real process with the unit's Environment= and log file
(start, restart, enable --now), stops it (stop, disable --now) and answers `show` as systemd would. So a test
drives a real llama-server through the very unit text a machine with systemd would run.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

from gateway_core.fleet.systemd import SystemdManager
from tests.testbed.child_processes import die_with_parent, stop_process


class SystemctlDouble:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[list[str]] = []
        self.enabled: set[str] = set()
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def unit_dir(self, user: bool) -> Path:
        return self.root / ("user" if user else "system")

    def manager(self, *, user: bool = False, dry_run: bool = False) -> SystemdManager:
        """What the fleet manager builds for one deployment's unit (its `systemd` factory)."""
        return SystemdManager(run=self, user=user, dry_run=dry_run, unit_dir=self.unit_dir(user), booted=lambda: True)

    def running(self, unit: str) -> bool:
        process = self._running.get(unit)
        return process is not None and process.poll() is None

    def __call__(self, command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        user = "--user" in command
        verb, *rest = [arg for arg in command[1:] if arg != "--user"]
        now = "--now" in rest
        units = [arg for arg in rest if not arg.startswith("-")]
        output = ""
        for unit in units:
            if verb in ("start", "restart") or (verb == "enable" and now):
                if verb == "restart":
                    self._stop(unit)
                if not self.running(unit):
                    self._start(unit, user)
            if verb in ("stop",) or (verb == "disable" and now):
                self._stop(unit)
            if verb == "enable":
                self.enabled.add(unit)
            if verb == "disable":
                self.enabled.discard(unit)
            if verb == "show":
                output += self._show(unit, user)
        return subprocess.CompletedProcess(command, 0, output, "")

    def _start(self, unit: str, user: bool) -> None:
        exec_start, environment, log_file = _read_unit(self.unit_dir(user) / unit, self.root / "cache")
        with contextlib.ExitStack() as files:
            log = files.enter_context(log_file.open("ab")) if log_file else subprocess.DEVNULL
            self._running[unit] = subprocess.Popen(
                exec_start,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def _stop(self, unit: str) -> None:
        stop_process(self._running.pop(unit, None))

    def _show(self, unit: str, user: bool) -> str:
        if not (self.unit_dir(user) / unit).exists():
            return "LoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\nNRestarts=0\n"
        running = self.running(unit)
        pid = self._running[unit].pid if running else 0
        state = "ActiveState=active\nSubState=running" if running else "ActiveState=inactive\nSubState=dead"
        return f"LoadState=loaded\n{state}\nMainPID={pid}\nNRestarts=0\nResult=success\n"

    def close(self) -> None:
        for unit in list(self._running):
            self._stop(unit)


def _read_unit(path: Path, cache: Path) -> tuple[list[str], dict[str, str], Path | None]:
    """ExecStart's words, the Environment= variables and the log file of a unit Corral rendered."""
    exec_start: list[str] = []
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # systemd sets a PATH of its own too
    log_file: Path | None = None
    for line in _directives(path):
        key, _, value = line.partition("=")
        value = value.replace("%C", str(cache)).replace("%%", "%")
        if key == "ExecStart":
            exec_start = [word.replace("$$", "$") for word in shlex.split(value)]
        elif key == "Environment":
            name, _, setting = value.partition("=")
            environment[name] = setting
        elif key == "StandardOutput" and value.startswith("append:"):
            log_file = Path(value.removeprefix("append:"))
    if not exec_start:
        raise AssertionError(f"{path} has no ExecStart")
    return exec_start, environment, log_file


def _directives(path: Path) -> Iterator[str]:
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            yield line
