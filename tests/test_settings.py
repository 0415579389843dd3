"""Where the daemon finds things: the llama-server binary and the GGUF directories, resolved in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_core.settings import BinaryNotFound, llama_server_binary, models_dirs, resolve_settings


def executable(directory: Path, name: str = "llama-server") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    binary = directory / name
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return binary


def test_an_explicit_binary_wins_over_the_environment_and_path(tmp_path):
    on_path = executable(tmp_path / "bin")
    env = {"CORRAL_LLAMA_SERVER": "/opt/env/llama-server", "PATH": str(on_path.parent)}

    assert llama_server_binary("/opt/flag/llama-server", env=env) == "/opt/flag/llama-server"


def test_corral_llama_server_wins_over_path(tmp_path):
    on_path = executable(tmp_path / "bin")
    env = {"CORRAL_LLAMA_SERVER": "/opt/env/llama-server", "PATH": str(on_path.parent)}

    assert llama_server_binary(None, env=env) == "/opt/env/llama-server"


def test_without_flag_or_environment_the_binary_on_path_is_used(tmp_path):
    on_path = executable(tmp_path / "bin")

    assert llama_server_binary(None, env={"PATH": f"{tmp_path / 'empty'}:{on_path.parent}"}) == str(on_path)


def test_with_no_binary_anywhere_the_error_says_what_to_pass(tmp_path):
    with pytest.raises(BinaryNotFound) as missing:
        llama_server_binary(None, env={"PATH": str(tmp_path)})

    message = str(missing.value)
    assert "--binary" in message
    assert "CORRAL_LLAMA_SERVER" in message
    assert missing.value.param == "binary"


def test_models_dirs_come_from_corral_models_dirs_split_on_colons(tmp_path):
    env = {"CORRAL_MODELS_DIRS": "/srv/models::~/gguf"}

    assert models_dirs(tmp_path, env=env) == [Path("/srv/models"), Path("~/gguf").expanduser()]


def test_models_dirs_default_to_the_data_dirs_models(tmp_path):
    assert models_dirs(tmp_path, env={}) == [tmp_path / "models"]


def test_flags_win_over_environment_for_the_daemons_addresses(tmp_path):
    env = {"CORRAL_DATA_DIR": str(tmp_path / "env"), "CORRAL_LISTEN": "0.0.0.0:9000", "CORRAL_SOCKET": "/run/x.sock"}

    from_env = resolve_settings(env=env)
    from_flags = resolve_settings(data_dir=str(tmp_path / "flag"), listen="[::1]:8801", socket_path="/s", env=env)

    assert (from_env.data_dir, from_env.listen_host, from_env.listen_port) == (tmp_path / "env", "0.0.0.0", 9000)
    assert from_env.socket_path == Path("/run/x.sock")
    assert (from_flags.data_dir, from_flags.listen_host, from_flags.listen_port) == (tmp_path / "flag", "::1", 8801)
    assert from_flags.socket_path == Path("/s")
