"""A router-mode DeploymentSpec: its model_path is a directory, mounted as /models; llama-server is configured
with LLAMA_ARG_MODELS_DIR and LLAMA_ARG_MODELS_MAX instead of a model and an alias; and a compose file keeps it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway_core.fleet.compose import export_compose, import_compose
from gateway_core.fleet.deployment import DeploymentSpec


def router_spec(**fields: object) -> DeploymentSpec:
    return DeploymentSpec.model_validate(
        {"name": "shelf", "model_path": "/srv/models", "port": 9100, "router": {"models_max": 2}, **fields}
    )


def test_a_router_is_configured_with_its_directory_and_models_max_and_no_model_or_alias() -> None:
    spec = router_spec(parallel=3)
    assert spec.models_dir == "/srv/models"  # the directory itself is mounted, not its parent
    env = spec.container_env()
    assert (env["LLAMA_ARG_MODELS_DIR"], env["LLAMA_ARG_MODELS_MAX"]) == ("/models", "2")
    assert (env["LLAMA_ARG_PORT"], env["LLAMA_ARG_N_PARALLEL"]) == ("9100", "3")
    assert "LLAMA_ARG_MODEL" not in env
    assert "LLAMA_ARG_ALIAS" not in env
    assert spec.llama_env()["LLAMA_ARG_MODELS_DIR"] == "/srv/models"  # systemd: the host's directory


def test_a_router_refuses_a_gguf_file_for_its_directory() -> None:
    with pytest.raises(ValidationError, match="directory of GGUFs"):
        router_spec(model_path="/srv/models/one.gguf")


@pytest.mark.parametrize("models_max", [0, 1, 4])
def test_a_compose_round_trip_keeps_router_mode(models_max: int) -> None:
    spec = router_spec(router={"models_max": models_max}, gpus=None, image="llama:cpu")
    imported = import_compose(export_compose([spec]))
    assert imported.warnings == []
    assert imported.specs == [spec]
