"""`corral daemon status|stop|restart|logs|install` against a real corral-core, and the unit checked by systemd."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main
from console.daemon_link import ensure_daemon
from tests.testbed import CorralDaemon, daemons_on
from tests.testbed.child_processes import process_ended
from tests.testbed.waiting import wait_for


@pytest.fixture(autouse=True)
def private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CORRAL_SOCKET", raising=False)


def corral(daemon: CorralDaemon, *argv: str) -> list[str]:
    return ["--socket", str(daemon.socket_path), "--data-dir", str(daemon.data_dir), *argv]


def test_status_says_pid_version_uptime_socket_listen_address_and_data_dir(
    corral_daemon: CorralDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(corral(corral_daemon, "daemon", "status", "--json")) == 0
    status = json.loads(capsys.readouterr().out)

    assert corral_daemon.process is not None
    assert status["running"] is True
    assert status["pid"] == corral_daemon.process.pid
    assert status["socket"] == str(corral_daemon.socket_path)
    assert status["listen"] == f"127.0.0.1:{corral_daemon.port}"
    assert status["data_dir"] == str(corral_daemon.data_dir)
    assert status["log"] == str(corral_daemon.data_dir / "corral-core.log")
    assert status["uptime_s"] >= 0

    assert main(corral(corral_daemon, "daemon", "status")) == 0
    text = capsys.readouterr().out
    assert "is running" in text
    assert f"http://127.0.0.1:{corral_daemon.port}" in text


def test_status_of_a_socket_nobody_answers_on_exits_1_and_says_so(
    socket_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--socket", str(socket_path), "daemon", "status"]) == 1
    assert f"nobody answers on {socket_path}" in capsys.readouterr().out


def test_stop_drains_the_daemon_by_its_own_pid_and_waits_until_the_socket_is_silent(
    corral_daemon: CorralDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert corral_daemon.process is not None
    pid = corral_daemon.process.pid

    assert main(corral(corral_daemon, "daemon", "stop")) == 0

    assert f"stopped corral-core (pid {pid})" in capsys.readouterr().out
    assert corral_daemon.process.poll() == 0, "SIGTERM: a clean drain and exit"
    assert not corral_daemon.socket_path.exists()
    assert "draining" in corral_daemon.log_tail()
    assert main(corral(corral_daemon, "daemon", "stop")) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_stop_also_stops_the_demo_llama_server_named_by_its_pid_file_and_only_that(
    corral_daemon: CorralDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_dir = corral_daemon.data_dir / "demo"
    demo_dir.mkdir()
    # A stand-in for the demo's server: a process whose command line names the demo's model, as start_demo's does.
    model = demo_dir / "tiny-llama.gguf"
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(model)])
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (demo_dir / "llama-server.pid").write_text(f"{stand_in.pid}\n")
        assert main(corral(corral_daemon, "daemon", "stop")) == 0
        assert f"stopped the demo llama-server (pid {stand_in.pid})" in capsys.readouterr().out
        assert stand_in.wait(timeout=10) == -signal.SIGTERM
        assert not (demo_dir / "llama-server.pid").exists()

        # A pid file left by a demo long gone, whose pid now belongs to someone else, stops nothing.
        (demo_dir / "llama-server.pid").write_text(f"{unrelated.pid}\n")
        assert main(corral(corral_daemon, "daemon", "stop")) == 0
        assert unrelated.poll() is None
    finally:
        for process in (stand_in, unrelated):
            process.kill()
            process.wait()


def test_stop_refuses_a_pid_that_is_not_a_corral_core_here(
    corral_daemon: CorralDaemon, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from console import daemon_commands

    monkeypatch.setattr(daemon_commands, "_is_corral_core", lambda pid: False)  # as seen from another PID namespace

    assert main(corral(corral_daemon, "daemon", "stop")) == 1

    assert "no corral-core runs as" in capsys.readouterr().err
    assert corral_daemon.process is not None
    assert corral_daemon.process.poll() is None, "nothing was signalled"


@pytest.fixture
def started(socket_path: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A corral-core started the way the console starts one (detached); the socket_path fixture stops it."""
    data_dir = tmp_path / "data"
    asyncio.run(ensure_daemon(socket_path, data_dir))
    return socket_path, data_dir


def test_restart_stops_it_and_starts_a_new_one_on_the_same_socket_and_listen_address(
    started: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    socket_path, data_dir = started
    argv = ["--socket", str(socket_path), "--data-dir", str(data_dir), "daemon"]
    assert main([*argv, "status", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)

    assert main([*argv, "restart"]) == 0

    out = capsys.readouterr().out
    assert f"stopped corral-core (pid {before['pid']})" in out
    assert "started corral-core" in out
    wait_for(lambda: process_ended(before["pid"]), "the old corral-core to end")
    assert main([*argv, "status", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["pid"] != before["pid"]
    assert after["listen"] == before["listen"]
    assert daemons_on(socket_path) == [after["pid"]]


def test_logs_prints_the_last_lines_and_follows_what_is_appended(
    corral_daemon: CorralDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(corral(corral_daemon, "daemon", "logs", "-n", "3")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines == corral_daemon.log_tail(3).splitlines()

    follower = subprocess.Popen(
        [sys.executable, "-m", "console.cli", *corral(corral_daemon, "daemon", "logs", "-n", "0", "-f")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for(lambda: _reads_log(follower.pid, corral_daemon.log_path), "the follower to open the log")
        with corral_daemon.log_path.open("a") as log:
            log.write("a line appended while following\n")
        assert follower.stdout is not None
        assert follower.stdout.readline() == "a line appended while following\n"
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        if follower.stdout is not None:
            follower.stdout.close()


def _reads_log(pid: int, log_path: Path) -> bool:
    """Process `pid` has the log open: the follower is reading it (from its end)."""
    try:
        return str(log_path) in [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False


def test_logs_of_a_stopped_daemon_are_read_from_its_data_dir(
    tmp_path: Path, socket_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "corral-core.log").write_text("one\ntwo: why it died\n")

    assert main(["--socket", str(socket_path), "daemon", "logs", "--data-dir", str(data_dir), "-n", "1"]) == 0
    assert capsys.readouterr().out == "two: why it died\n"


# -- install ----------------------------------------------------------------------------------------------


def verify(unit: Path) -> None:
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze is None:
        pytest.skip("systemd-analyze unavailable: install Debian's systemd package")
    result = subprocess.run([systemd_analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # It reports a bad value on stderr and still exits 0.
    assert result.returncode == 0
    assert result.stderr == ""


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_install_writes_a_unit_systemd_accepts_and_says_what_to_run_next(
    user: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unit_dir = tmp_path / "units"
    data_dir = tmp_path / "data dir"  # a space: quoted in ExecStart
    argv = ["daemon", "install", "--unit-dir", str(unit_dir), "--data-dir", str(data_dir), "--listen", "127.0.0.1:8801"]

    assert main([*argv, *(["--user"] if user else [])]) == 0

    unit = unit_dir / "corral-core.service"
    text = unit.read_text()
    out = capsys.readouterr().out
    assert f"wrote {unit}" in out
    assert ("systemctl --user daemon-reload" if user else "systemctl daemon-reload") in out
    assert "enable --now corral-core" in out
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_start.split("=", 1)[1].split()[0].startswith("/"), "an absolute corral-core"
    assert f'--data-dir "{data_dir}"' in exec_start
    assert "--listen 127.0.0.1:8801" in exec_start
    assert "Restart=on-failure" in text
    assert "PrivateDevices" not in text.replace("No PrivateDevices=", ""), "NVML needs /dev/nvidia*"
    assert not list(unit_dir.glob(".*.tmp")), "written atomically, nothing left over"
    verify(unit)


def test_install_dry_run_prints_the_unit_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unit_dir = tmp_path / "units"

    assert main(["daemon", "install", "--dry-run", "--unit-dir", str(unit_dir)]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"# {unit_dir / 'corral-core.service'}\n")
    assert "--socket /run/corral/corral.sock" in out
    assert "StateDirectory=corral" in out
    assert "ProtectSystem=full" in out
    assert not unit_dir.exists()
    unit = tmp_path / "checked" / "corral-core.service"
    unit.parent.mkdir()
    unit.write_text("\n".join(line for line in out.splitlines()[1:] if not line.startswith("# then:")) + "\n")
    verify(unit)
