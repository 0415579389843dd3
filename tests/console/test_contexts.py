"""Contexts as console.json keeps them and `corral context ...` edits them; which one a command runs against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from console.app import CorralApp
from console.cli import main
from console.contexts import ContextError, SshDestination, chosen, default_context, make_context
from console.palette import CorralCommands
from console.settings import ConsoleSettings
from tests.testbed import CorralDaemon
from tests.testbed.waiting import wait_for_async

APP_WAIT_S = 15.0


@pytest.fixture
def settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CORRAL_SOCKET", raising=False)
    return tmp_path / "config" / "corral" / "console.json"


def test_an_old_console_json_without_contexts_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "console.json"
    path.write_text(json.dumps({"theme": "high-contrast", "keymap": {"app.chat": "ctrl+o"}}))

    settings = ConsoleSettings.load(path)

    assert settings.theme == "high-contrast"
    assert settings.contexts == {}
    assert settings.context is None


def test_add_list_use_and_remove_keep_console_json_and_mark_the_current_one(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["context", "add", "gpu-box", "--ssh", "admin@10.0.0.5:2222", "--remote-socket", "/run/c.sock"]) == 0
    assert main(["context", "add", "lab", "--socket", "/srv/lab/corral.sock", "--use"]) == 0
    saved = json.loads(settings_file.read_text())
    assert saved["context"] == "lab"
    assert saved["contexts"]["gpu-box"] == {"ssh": "admin@10.0.0.5:2222", "remote_socket": "/run/c.sock"}
    capsys.readouterr()

    assert main(["context", "list", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert [name for name, row in listed.items() if row["current"]] == ["lab"]
    assert set(listed) == {"default", "gpu-box", "lab"}

    assert main(["context", "use", "gpu-box"]) == 0
    assert ConsoleSettings.load(settings_file).context == "gpu-box"
    assert main(["context", "remove", "gpu-box"]) == 0
    assert "the current context is now default" in capsys.readouterr().out
    assert ConsoleSettings.load(settings_file).context is None
    assert main(["context", "use", "nowhere"]) == 1


def test_a_bad_context_in_console_json_is_named_and_costs_no_other(
    settings_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings_file.parent.mkdir(parents=True)
    contexts = {"broken": {"ssh": "not a destination"}, "fine": {"socket": "/srv/c.sock"}, "junk": 3}
    settings_file.write_text(json.dumps({"contexts": contexts}))

    assert main(["context", "list"]) == 0

    captured = capsys.readouterr()
    assert "fine" in captured.out
    assert "broken" not in captured.out
    assert "context 'broken': 'not a destination' is not an SSH destination" in captured.err
    assert "corral context remove broken" in captured.err, "it says how to fix it"
    assert main(["--context", "broken", "status"]) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu-box", SshDestination("gpu-box")),
        ("admin@gpu-box", SshDestination("gpu-box", "admin")),
        ("admin@10.0.0.5:2222", SshDestination("10.0.0.5", "admin", 2222)),
        ("root@[::1]:22", SshDestination("::1", "root", 22)),
    ],
)
def test_ssh_destinations_parse_as_ssh_takes_them(text: str, expected: SshDestination) -> None:
    assert SshDestination.parse(text) == expected
    assert str(SshDestination.parse(text)) == text


@pytest.mark.parametrize("text", ["", "a b@host", "host:0", "host:99999", "host;rm -rf", "-oProxyCommand=x"])
def test_an_ssh_destination_that_is_not_one_is_refused_in_words(text: str) -> None:
    with pytest.raises(ContextError, match=r"SSH destination|port"):
        SshDestination.parse(text)


def test_a_context_is_a_socket_or_a_box_never_both_and_a_box_is_never_started() -> None:
    with pytest.raises(ContextError, match="either"):
        make_context("x", socket=Path("/s"), ssh="a@b")
    with pytest.raises(ContextError, match="never started"):
        make_context("x", ssh="a@b", data_dir=Path("/d"))
    with pytest.raises(ContextError, match="KEY=VALUE"):
        make_context("x", ssh="a@b", ssh_options=["-F/etc/passwd"])
    assert not make_context("x", ssh="a@b").autostart
    assert not make_context("x", socket=Path("/s")).autostart, "a socket alone does not say where to start one"
    assert make_context("x", socket=Path("/s"), data_dir=Path("/d")).autostart


def test_a_named_socket_wins_over_the_remembered_context_and_context_wins_over_both(tmp_path: Path) -> None:
    settings = ConsoleSettings(contexts={"box": {"ssh": "a@b"}}, context="box")
    default = default_context(tmp_path / "corral.sock", tmp_path)

    assert chosen(settings, None, default, explicit_socket=False).name == "box"
    assert chosen(settings, None, default, explicit_socket=True) is default
    assert chosen(settings, "box", default, explicit_socket=True).name == "box"
    assert chosen(settings, "default", default, explicit_socket=False) is default


@pytest.mark.asyncio
async def test_a_read_only_console_still_switches_between_local_contexts_from_the_palette(
    settings_file: Path, corral_daemon: CorralDaemon, tmp_path: Path
) -> None:
    other = CorralDaemon(tmp_path / "other").start()
    try:
        other.add_provider("only-on-the-other", "http://127.0.0.1:9", models={"m": "m"})
        assert main(["context", "add", "other", "--socket", str(other.socket_path)]) == 0
        app = CorralApp(corral_daemon.socket_path, corral_daemon.data_dir, autostart=False, read_only=True)

        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for_async(lambda: app.connected, "the console to connect", APP_WAIT_S, pause=pilot.pause)
            offered = [hit.text async for hit in CorralCommands(app.screen).discover()]
            assert "Switch context: other" in offered
            assert "Switch context: default" not in offered, "the current one is not offered"

            app.switch_context("other")
            await wait_for_async(
                lambda: "only-on-the-other" in app.live.providers,
                "the other's providers",
                APP_WAIT_S,
                pause=pilot.pause,
            )
            assert app.sub_title.startswith("read-only"), "still read-only after the switch"
            assert f"other · {other.socket_path}" in app.sub_title
            assert ConsoleSettings.load(settings_file).context == "other"
    finally:
        other.stop()
