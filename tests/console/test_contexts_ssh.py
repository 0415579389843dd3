"""Contexts over SSH, for real: a corral-core on a socket standing for a remote box, a real sshd on 127.0.0.1, and
the operator's own ssh forwarding that socket. The CLI and the console see the box's providers through the
tunnel; leaving removes ssh and the local socket; a box where nothing answers says so in ssh's own words."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.command import CommandList

from console.app import CorralApp
from console.cli import main
from console.contexts import Context, make_context
from console.settings import ConsoleSettings
from tests.testbed import CorralDaemon
from tests.testbed.sshd import SshServer
from tests.testbed.waiting import wait_for, wait_for_async

APP_WAIT_S = 20.0


@pytest.fixture(autouse=True)
def private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """console.json of the test's own (the contexts are kept there), not the user's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CORRAL_SOCKET", raising=False)
    return tmp_path / "config" / "corral" / "console.json"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[CorralDaemon]:
    """The box's corral-core, with a provider only it has."""
    daemon = CorralDaemon(tmp_path / "remote").start()
    try:
        daemon.add_provider("on-the-box", "http://127.0.0.1:9", models={"box-model": "box-model"})
        yield daemon
    finally:
        daemon.stop()


def box_context(sshd: SshServer, remote_socket: str, name: str = "box") -> Context:
    return make_context(
        name, ssh=sshd.destination, identity=sshd.identity, remote_socket=remote_socket, ssh_options=sshd.client_options
    )


def add_box(sshd: SshServer, remote_socket: str, name: str = "box") -> None:
    """`corral context add NAME --ssh ...`, as an operator types it."""
    options = [arg for option in sshd.client_options for arg in ("--ssh-option", option)]
    argv = ["context", "add", name, "--ssh", sshd.destination, "--identity", str(sshd.identity), *options]
    assert main([*argv, "--remote-socket", remote_socket]) == 0


def ssh_forwards_to(remote_socket: str) -> list[int]:
    """Pids of ssh clients forwarding to `remote_socket`: the tunnels still open."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"ssh") and any(arg.endswith(f":{remote_socket}".encode()) for arg in args):
            pids.append(int(entry.name))
    return pids


def test_the_cli_lists_a_remote_boxs_providers_through_an_ssh_tunnel_and_leaves_none_open(
    sshd: SshServer, remote: CorralDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    add_box(sshd, str(remote.socket_path))
    capsys.readouterr()

    assert main(["--context", "box", "providers", "list"]) == 0
    assert "on-the-box" in capsys.readouterr().out
    assert main(["context", "use", "box"]) == 0
    assert main(["models"]) == 0, "the current context is used without --context"

    out = capsys.readouterr().out
    assert "box-model" in out
    assert main(["daemon", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert remote.process is not None
    assert (status["context"], status["pid"], status["socket"]) == ("box", remote.process.pid, str(remote.socket_path))
    assert "Accepted publickey" in sshd.log_tail(), "the tunnel went through the real sshd"
    wait_for(lambda: not ssh_forwards_to(str(remote.socket_path)), "every tunnel the CLI opened to close")


def test_a_box_where_no_corral_core_answers_says_so_with_ssh_s_own_words(
    sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nobody" / "corral.sock")
    add_box(sshd, missing)
    capsys.readouterr()

    assert main(["--context", "box", "status"]) == 1

    error = capsys.readouterr().err
    assert f"no corral-core answers on {missing}" in error
    assert "open failed" in error, "ssh's own stderr is quoted"
    assert not ssh_forwards_to(missing)


def test_a_box_that_refuses_the_key_is_never_started_and_says_why(
    sshd: SshServer, remote: CorralDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_key = tmp_path / "not-authorised"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    options = [arg for option in sshd.client_options for arg in ("--ssh-option", option)]
    argv = ["context", "add", "box", "--ssh", sshd.destination, "--identity", str(other_key), *options]
    assert main([*argv, "--remote-socket", str(remote.socket_path)]) == 0
    capsys.readouterr()

    assert main(["--context", "box", "daemon", "restart"]) == 1
    assert "never starts or signals a remote one" in capsys.readouterr().err
    assert main(["--context", "box", "status"]) == 1
    error = capsys.readouterr().err
    assert "ssh to " in error
    assert "Permission denied (publickey)" in error, "ssh's own words"


@pytest.mark.asyncio
async def test_the_console_follows_a_box_over_ssh_and_quitting_removes_ssh_and_the_local_socket(
    sshd: SshServer, remote: CorralDaemon, tmp_path: Path
) -> None:
    context = box_context(sshd, str(remote.socket_path))
    app = CorralApp(tmp_path / "local" / "corral.sock", tmp_path / "local", autostart=False, context=context)

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(
            lambda: "on-the-box" in app.live.providers, "the box's providers", APP_WAIT_S, pause=pilot.pause
        )
        assert app._link is not None
        assert app._link.tunnel is not None
        tunnel = app._link.tunnel
        local_socket, process = tunnel.local_socket, tunnel.process
        assert local_socket is not None
        assert local_socket.exists()
        assert process is not None
        assert process.poll() is None
        assert app.sub_title.startswith("box · ssh "), "the header names the context"
        assert (local_socket.parent.stat().st_mode & 0o777) == 0o700

    assert process.poll() is not None, "ssh ended with the console"
    assert not local_socket.exists()
    assert not local_socket.parent.exists()
    assert not ssh_forwards_to(str(remote.socket_path))


@pytest.mark.asyncio
async def test_switching_context_from_the_palette_follows_the_other_box_and_is_remembered(
    sshd: SshServer, remote: CorralDaemon, corral_daemon: CorralDaemon, private_config: Path
) -> None:
    corral_daemon.add_provider("on-this-machine", "http://127.0.0.1:9", models={"local-model": "local-model"})
    add_box(sshd, str(remote.socket_path))
    app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False)

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(
            lambda: "on-this-machine" in app.live.providers, "the local providers", APP_WAIT_S, pause=pilot.pause
        )
        await pilot.press("ctrl+p")
        await pilot.press(*"Switch context: box")
        await wait_for_async(
            lambda: "Switch context: box" in str(app.screen.query_one(CommandList).get_option_at_index(0).prompt),
            "the palette to offer the switch",
            APP_WAIT_S,
            pause=pilot.pause,
        )
        await pilot.press("enter")
        await wait_for_async(
            lambda: "on-the-box" in app.live.providers, "the box's providers", APP_WAIT_S, pause=pilot.pause
        )

        assert "on-this-machine" not in app.live.providers, "the live state started over"
        assert app.context.name == "box"
        assert ConsoleSettings.load(private_config).context == "box"
        assert ssh_forwards_to(str(remote.socket_path))

        app.switch_context("default")
        await wait_for_async(
            lambda: "on-this-machine" in app.live.providers, "the local providers again", APP_WAIT_S, pause=pilot.pause
        )
        await wait_for_async(
            lambda: not ssh_forwards_to(str(remote.socket_path)),
            "the tunnel to close on leaving the box",
            APP_WAIT_S,
            pause=pilot.pause,
        )
        assert ConsoleSettings.load(private_config).context is None


def test_daemon_logs_of_a_box_are_read_there_over_the_same_ssh(
    sshd: SshServer, remote: CorralDaemon, capfd: pytest.CaptureFixture[str]
) -> None:
    add_box(sshd, str(remote.socket_path))
    capfd.readouterr()

    assert main(["--context", "box", "daemon", "logs", "-n", "2"]) == 0

    printed = capfd.readouterr().out.splitlines()
    assert len(printed) == 2
    assert all(line in remote.log_path.read_text().splitlines() for line in printed), "the box's own log"


@pytest.mark.asyncio
async def test_the_console_opens_a_new_tunnel_when_ssh_dies_and_follows_the_box_again(
    sshd: SshServer, remote: CorralDaemon, tmp_path: Path
) -> None:
    context = box_context(sshd, str(remote.socket_path))
    app = CorralApp(tmp_path / "local" / "corral.sock", tmp_path / "local", autostart=False, context=context)

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_async(lambda: app.connected, "the console to reach the box", APP_WAIT_S, pause=pilot.pause)
        assert app._link is not None
        first = app._link.tunnel
        assert first is not None
        assert first.process is not None
        first.process.kill()

        await wait_for_async(
            lambda: app._link is not None and app._link.tunnel is not first and app.connected,
            "a new tunnel and the stream again",
            APP_WAIT_S,
            pause=pilot.pause,
        )
        assert first.directory is not None
        assert not first.directory.exists(), "the dead tunnel's socket is cleaned up"
        remote.add_provider("added-later", "http://127.0.0.1:9", models={"later": "later"})
        await wait_for_async(
            lambda: "added-later" in app.live.providers, "events through the new tunnel", APP_WAIT_S, pause=pilot.pause
        )
    assert not ssh_forwards_to(str(remote.socket_path))
