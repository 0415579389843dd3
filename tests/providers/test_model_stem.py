"""A llama-server started without --alias lists its model as the file's path; Corral offers the file's stem too."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway_core.providers.health import public_names
from tests.testbed import CorralDaemon
from tests.testbed.llama_process import LlamaServerProcess
from tests.testbed.waiting import wait_for

PROBE_WAIT_S = 15.0


@dataclass
class UnaliasedLlamaServer(LlamaServerProcess):
    """llama-server as an operator may start it: `-m PATH` and no --alias."""

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("--alias")
        return command[:at] + command[at + 2 :]


@pytest.fixture
def unaliased_server(llama_server_binary: Path, tiny_model: Path, tmp_path: Path) -> Iterator[LlamaServerProcess]:
    models = tmp_path / "srv" / "models"
    models.mkdir(parents=True)
    path = models / "tiny.gguf"
    shutil.copy(tiny_model, path)
    server = UnaliasedLlamaServer(binary=llama_server_binary, model=path, log_path=tmp_path / "llama-server.log")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.mark.llama_server
def test_a_model_listed_by_its_path_is_served_under_its_file_stem_and_its_path(
    corral_daemon: CorralDaemon, unaliased_server: LlamaServerProcess
) -> None:
    path = str(unaliased_server.model)
    assert "--alias" not in unaliased_server.command()
    corral_daemon.add_provider("local", unaliased_server.base_url)
    key = corral_daemon.create_key("app")

    def listed() -> dict[str, str]:
        (provider,) = corral_daemon.admin_call("GET", "/providers").json()
        models: dict[str, str] = provider["models"]
        return models

    wait_for(lambda: bool(listed()), "the provider to list its models", PROBE_WAIT_S)
    assert listed() == {"tiny": path, path: path}

    for model in ("tiny", path):
        answer = httpx.post(
            corral_daemon.base_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            timeout=30.0,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == model  # the name the client asked for comes back


def test_a_stem_that_would_clash_is_not_offered() -> None:
    assert public_names(["/a/tiny.gguf", "/b/tiny.gguf"]) == {
        "/a/tiny.gguf": "/a/tiny.gguf",
        "/b/tiny.gguf": "/b/tiny.gguf",
    }
    assert public_names(["tiny", "/a/tiny.gguf"]) == {"tiny": "tiny", "/a/tiny.gguf": "/a/tiny.gguf"}
    assert public_names(["qwen2.5-7b"]) == {"qwen2.5-7b": "qwen2.5-7b"}
