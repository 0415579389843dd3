"""The `corral` command line, run as a user runs it, against a real corral-core.

The spellings, the key on the last line and the exit codes are a contract that scripts rely on
(docs/architecture.md, "Contracts users script against").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_URL = "http://127.0.0.1:1"  # nothing listens on port 1, so the probe fails fast


def corral(socket_path: Path, *args: str, timeout_s: float = 60, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "console.cli", "--socket", str(socket_path), *args],
        capture_output=True,
        text=True,
        errors="replace",
        cwd=cwd,
        timeout=timeout_s,
        check=False,
    )


def models_as(base_url: str, key: str) -> int:
    response = httpx.get(f"{base_url}/v1/models", headers={"authorization": f"Bearer {key}"}, timeout=10)
    return response.status_code


def test_keys_create_prints_the_key_alone_on_the_last_line_and_the_key_works(corral_daemon):
    result = corral(corral_daemon.socket_path, "keys", "create", "ci", "--models", "tiny,small", "--rpm", "60")

    assert result.returncode == 0, result.stderr
    *before, warning, key = result.stdout.rstrip("\n").split("\n")
    assert key.startswith("sk-corral-")
    assert key == key.strip()
    assert "only once" in warning
    assert any("ci" in line for line in before)
    assert models_as(corral_daemon.base_url, key) == 200


def test_keys_create_json_is_one_object_with_the_key(corral_daemon):
    result = corral(
        corral_daemon.socket_path, "keys", "create", "ci", "--expires-in", "1.5", "--max-concurrency", "2", "--json"
    )

    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["name"] == "ci"
    assert created["max_concurrency"] == 2
    assert created["expires_at"] is not None
    assert models_as(corral_daemon.base_url, created["key"]) == 200


def test_keys_list_shows_keys_but_never_their_secrets(corral_daemon):
    secret = corral_daemon.create_key("reader", models=["tiny"])

    as_json = corral(corral_daemon.socket_path, "keys", "list", "--json")
    as_table = corral(corral_daemon.socket_path, "keys", "list")

    assert as_json.returncode == as_table.returncode == 0
    (listed,) = json.loads(as_json.stdout)
    assert listed["name"] == "reader"
    assert listed["models"] == ["tiny"]
    header, row = as_table.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "STATE", "MODELS"]
    assert row.split()[1:4] == ["reader", "active", "tiny"]
    assert secret not in as_json.stdout + as_table.stdout
    assert "\x1b" not in as_table.stdout  # no colour when stdout is not a terminal


def test_a_revoked_key_is_refused_on_its_next_request(corral_daemon):
    key = corral_daemon.create_key("leaver")
    assert models_as(corral_daemon.base_url, key) == 200

    result = corral(corral_daemon.socket_path, "keys", "revoke", "leaver")

    assert result.returncode == 0, result.stderr
    assert "revoked" in result.stdout
    assert models_as(corral_daemon.base_url, key) == 401


def test_revoking_an_unknown_key_exits_1_with_the_daemons_message(corral_daemon):
    result = corral(corral_daemon.socket_path, "keys", "revoke", "nobody")

    assert result.returncode == 1
    assert "no key with id or name 'nobody'" in result.stderr
    assert result.stdout == ""


def test_status_json_parses_and_counts_what_was_added(corral_daemon):
    corral_daemon.create_key("one")

    result = corral(corral_daemon.socket_path, "status", "--json")

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["keys"] == 1
    assert status["providers"] == []
    assert isinstance(status["version"], str)


def test_status_without_json_is_a_short_human_summary(corral_daemon):
    result = corral(corral_daemon.socket_path, "status")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("corral-core ")
    assert "0 providers" in result.stdout
    assert "\x1b" not in result.stdout


def test_output_into_a_closed_pipe_ends_quietly_as_head_expects(corral_daemon):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before corral writes, as `corral status | head -0` leaves it
    try:
        result = subprocess.run(
            [sys.executable, "-m", "console.cli", "status", "--socket", str(corral_daemon.socket_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)

    assert result.returncode == 0
    assert result.stderr == "", "no traceback for a reader that has what it wanted"


def test_socket_may_also_follow_the_subcommand(corral_daemon):
    result = subprocess.run(
        [sys.executable, "-m", "console.cli", "models", "--json", "--socket", str(corral_daemon.socket_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}


def test_a_duplicate_provider_name_exits_1_naming_the_field(corral_daemon):
    corral_daemon.add_provider("remote", UNREACHABLE_URL, type_="openai")

    result = corral(
        corral_daemon.socket_path, "providers", "add", "remote", "--type", "openai", "--url", UNREACHABLE_URL
    )

    assert result.returncode == 1
    assert "name" in result.stderr
    assert "already exists" in result.stderr


def test_a_bad_url_exits_1_naming_base_url(corral_daemon):
    result = corral(
        corral_daemon.socket_path, "providers", "add", "remote", "--type", "openai", "--url", "ftp://example.com"
    )

    assert result.returncode == 1
    assert "base_url" in result.stderr
    assert corral_daemon.admin_call("GET", "/providers").json() == []


def test_an_unknown_provider_type_is_a_usage_error():
    result = corral(
        Path("/nonexistent/corral.sock"), "providers", "add", "remote", "--type", "mystery", "--url", UNREACHABLE_URL
    )

    assert result.returncode == 2
    assert "--type" in result.stderr
    assert "llama-server" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["providers"],
        ["keys"],
        ["providers", "add", "remote", "--url", UNREACHABLE_URL],
        ["keys", "create", "k", "--rpm", "zero"],
        ["chat", "tiny"],
        ["launch"],
    ],
)
def test_incomplete_or_malformed_commands_are_usage_errors(args):
    result = corral(Path("/nonexistent/corral.sock"), *args)

    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_a_provider_can_be_disabled_enabled_tested_and_removed(corral_daemon):
    sock = corral_daemon.socket_path
    added = corral(
        sock,
        "providers",
        "add",
        "remote",
        "--type",
        "openai",
        "--url",
        UNREACHABLE_URL,
        "--api-key-env",
        "REMOTE_KEY",
        "--model",
        "big=big-2025",
        "--priority",
        "-1",
        "--weight",
        "3",
        "--max-concurrency",
        "4",
    )

    disabled = corral(sock, "providers", "disable", "remote")
    listed_disabled = json.loads(corral(sock, "providers", "list", "--json").stdout)
    enabled = corral(sock, "providers", "enable", "remote")
    tested = corral(sock, "providers", "test", "remote")
    removed = corral(sock, "providers", "remove", "remote")
    listed_after = json.loads(corral(sock, "providers", "list", "--json").stdout)

    assert added.returncode == 0, added.stderr
    assert "not ready" in added.stderr  # saved, but the probe found nothing there
    (provider,) = listed_disabled
    assert provider["state"] == "disabled"
    assert provider["models"] == {"big": "big-2025"}
    assert (provider["api_key_env"], provider["priority"], provider["weight"], provider["max_concurrency"]) == (
        "REMOTE_KEY",
        -1,
        3,
        4,
    )
    assert disabled.returncode == enabled.returncode == removed.returncode == 0
    assert tested.returncode == 1  # a provider that is not ready fails the test
    assert tested.stdout.startswith("remote: down")
    assert listed_after == []


def test_removing_an_unknown_provider_exits_1(corral_daemon):
    result = corral(corral_daemon.socket_path, "providers", "remove", "ghost")

    assert result.returncode == 1
    assert "no provider named 'ghost'" in result.stderr


@pytest.mark.llama_server
def test_a_provider_added_with_a_model_mapping_is_listed_and_serves_chat(corral_daemon, llama_servers):
    (server,) = llama_servers(1)
    sock = corral_daemon.socket_path

    added = corral(
        sock, "providers", "add", "llama", "--type", "llama-server", "--url", server.base_url, "--model", "tiny=tiny"
    )
    listed = corral(sock, "providers", "list", "--json")
    table = corral(sock, "providers", "list")
    tested = corral(sock, "providers", "test", "llama", "--json")
    served = corral(sock, "models", "--json")
    chat = corral(sock, "chat", "tiny", "hello", "--max-tokens", "8")

    assert added.returncode == 0, added.stderr
    assert "added provider llama" in added.stdout
    (provider,) = json.loads(listed.stdout)
    assert provider["name"] == "llama"
    assert provider["type"] == "llama-server"
    assert provider["models"] == {"tiny": "tiny"}
    assert provider["state"] == "ready"
    assert table.stdout.splitlines()[1].split()[:3] == ["llama", "llama-server", "ready"]
    assert tested.returncode == 0
    assert json.loads(tested.stdout)["health"] == "ready"
    assert json.loads(served.stdout) == {"tiny": ["llama"]}
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.endswith("\n")
    assert chat.stdout.strip()
    assert "provider llama" in chat.stderr
    assert "completion tokens" in chat.stderr


@pytest.mark.llama_server
def test_chat_takes_a_system_message_and_sampling_options(corral_daemon, llama_servers):
    (server,) = llama_servers(1)
    corral_daemon.add_provider("llama", server.base_url, models={"tiny": "tiny"})

    result = corral(
        corral_daemon.socket_path,
        "chat",
        "tiny",
        "hello",
        "--system",
        "Answer briefly.",
        "--max-tokens",
        "4",
        "--temperature",
        "0",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_chat_with_a_model_nobody_serves_exits_1_naming_the_model(corral_daemon):
    result = corral(corral_daemon.socket_path, "chat", "ghost", "hello")

    assert result.returncode == 1
    assert "model 'ghost' is not served here" in result.stderr
    assert result.stdout == ""


def test_models_lists_each_public_model_with_its_providers(corral_daemon):
    corral_daemon.add_provider("remote", UNREACHABLE_URL, type_="openai", models={"big": "big-2025"})
    corral_daemon.add_provider("backup", UNREACHABLE_URL, type_="openai", models={"big": "big-2025"})

    as_json = corral(corral_daemon.socket_path, "models", "--json")
    as_table = corral(corral_daemon.socket_path, "models")

    assert as_json.returncode == as_table.returncode == 0
    assert {model: sorted(names) for model, names in json.loads(as_json.stdout).items()} == {
        "big": ["backup", "remote"]
    }
    assert as_table.stdout.splitlines()[0].split() == ["MODEL", "PROVIDERS"]
    assert as_table.stdout.splitlines()[1].startswith("big ")


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["models", "--json"],
        ["providers", "list"],
        ["providers", "add", "p", "--type", "openai", "--url", UNREACHABLE_URL],
        ["providers", "remove", "p"],
        ["providers", "enable", "p"],
        ["providers", "disable", "p"],
        ["providers", "test", "p"],
        ["keys", "list", "--json"],
        ["keys", "create", "k"],
        ["keys", "revoke", "k"],
        ["chat", "tiny", "hello"],
    ],
)
def test_every_command_without_a_daemon_exits_1_and_says_how_to_start_one(tmp_path, args):
    missing = tmp_path / "corral.sock"

    result = corral(missing, *args)

    assert result.returncode == 1
    assert result.stdout == ""
    assert f"corral-core is not running (no socket at {missing})" in result.stderr
    assert "Start it with `corral-core`" in result.stderr
    assert "Traceback" not in result.stderr


def test_models_dir_scan_reads_a_relative_dir_from_where_the_user_is(corral_daemon, tiny_model, tmp_path):
    models = tmp_path / "here" / "models"
    models.mkdir(parents=True)
    shutil.copy(tiny_model, models / "tiny.gguf")

    result = corral(corral_daemon.socket_path, "models-dir", "scan", "models", "--json", cwd=tmp_path / "here")

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["directories"] == [str(models)]
    assert [model["path"] for model in answer["models"]] == [str(models / "tiny.gguf")]
