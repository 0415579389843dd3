"""docker-compose export and import: Corral's own files round-trip, hand-written files in the common shapes import."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
import yaml

from gateway_core.fleet.compose import ComposeError, export_compose, import_compose
from gateway_core.fleet.deployment import DEFAULT_CPU_IMAGE, DeploymentSpec
from tests.testbed import component_unavailable

GPU_ALL = DeploymentSpec(name="qwen", model_path="/srv/models/qwen2.5-7b-q4_k_m.gguf", port=8081)
CPU_ONLY = DeploymentSpec(
    name="tiny-cpu", model_path="/opt/llm/tiny.gguf", port=8082, gpus=None, image=DEFAULT_CPU_IMAGE
)
TWO_GPUS_TUNED = DeploymentSpec(
    name="llama-70b",
    model_path="/data/models/llama-3.3-70b/llama-3.3-70b-q4_k_m-00001-of-00002.gguf",
    port=8083,
    gpus=(0, 1),
    ctx_size=32768,
    parallel=4,
    n_gpu_layers=60,
    host="0.0.0.0",
)
WITH_EXTRA_ARGS = DeploymentSpec(
    name="mistral.v3",
    model_path="/home/ann/my models/$mistral 50%.gguf",
    port=9000,
    gpus=(2,),
    extra_args=("--flash-attn", "on", "--cache-type-k", "q8_0", "--api-key", "yes"),
)
COLON_IN_MODELS_DIR = DeploymentSpec(name="odd", model_path="/mnt/disk:2/models/m.gguf", port=9001, gpus="all")
VARIED = [GPU_ALL, CPU_ONLY, TWO_GPUS_TUNED, WITH_EXTRA_ARGS, COLON_IN_MODELS_DIR]


def services(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)["services"]


def imported(text: str, **options: Any) -> tuple[list[DeploymentSpec], list[str]]:
    result = import_compose(dedent(text), **options)
    return result.specs, result.warnings


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize("spec", VARIED, ids=lambda spec: spec.name)
def test_an_exported_deployment_imports_back_unchanged_and_without_warnings(spec: DeploymentSpec):
    result = import_compose(export_compose([spec]))

    assert result.specs == [spec]
    assert result.warnings == []


def test_a_whole_fleet_round_trips_in_one_file_in_order():
    assert import_compose(export_compose(VARIED)).specs == VARIED


def test_a_systemd_deployment_exports_as_the_same_deployment_run_in_a_container():
    native = GPU_ALL.model_copy(update={"kind": "systemd"})

    assert import_compose(export_compose([native])).specs == [GPU_ALL]


# ---------------------------------------------------------------- export shape


@pytest.mark.parametrize(
    ("spec", "devices"),
    [
        (GPU_ALL, [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]),
        (TWO_GPUS_TUNED, [{"driver": "nvidia", "device_ids": ["0", "1"], "capabilities": ["gpu"]}]),
        (CPU_ONLY, None),
    ],
    ids=["all-gpus-count-all", "named-gpus-device-ids", "cpu-no-reservation"],
)
def test_gpus_are_reserved_as_nvidia_device_requests(spec: DeploymentSpec, devices: list[dict[str, Any]] | None):
    service = services(export_compose([spec]))[spec.name]

    expected = {"resources": {"reservations": {"devices": devices}}} if devices else None
    assert service.get("deploy") == expected


def test_llama_server_is_configured_through_llama_arg_variables_with_the_model_under_models():
    service = services(export_compose([TWO_GPUS_TUNED]))["llama-70b"]

    assert service["environment"] == {
        "LLAMA_ARG_MODEL": "/models/llama-3.3-70b-q4_k_m-00001-of-00002.gguf",
        "LLAMA_ARG_ALIAS": "llama-70b",
        "LLAMA_ARG_CTX_SIZE": "32768",
        "LLAMA_ARG_N_GPU_LAYERS": "60",
        "LLAMA_ARG_N_PARALLEL": "4",
        "LLAMA_ARG_HOST": "0.0.0.0",
        "LLAMA_ARG_PORT": "8083",
    }
    assert service["volumes"] == ["/data/models/llama-3.3-70b:/models:ro"]


def test_the_service_runs_on_the_host_network_with_no_ports_section():
    service = services(export_compose([GPU_ALL]))["qwen"]

    assert service["network_mode"] == "host"
    assert "ports" not in service
    assert service["environment"]["LLAMA_ARG_PORT"] == "8081"


def test_the_service_is_named_restarted_labelled_and_health_checked_like_a_managed_container():
    service = services(export_compose([TWO_GPUS_TUNED]))["llama-70b"]

    assert service["container_name"] == "corral-llama-70b"
    assert service["restart"] == "unless-stopped"
    assert service["labels"] == {"corral.managed": "true", "corral.name": "llama-70b"}
    # Listening on 0.0.0.0, the server answers its health check on loopback.
    assert service["healthcheck"]["test"] == ["CMD", "curl", "-fsS", "http://127.0.0.1:8083/health"]
    assert {"interval", "timeout", "retries", "start_period"} <= service["healthcheck"].keys()


def test_extra_args_become_the_command_and_no_command_is_written_without_them():
    exported = services(export_compose([GPU_ALL, WITH_EXTRA_ARGS]))

    assert "command" not in exported["qwen"]
    assert exported["mistral.v3"]["command"] == ["--flash-attn", "on", "--cache-type-k", "q8_0", "--api-key", "yes"]


def test_dollars_are_doubled_so_compose_does_not_interpolate_them():
    text = export_compose([WITH_EXTRA_ARGS])

    assert "/models/$$mistral 50%.gguf" in text
    assert "/home/ann/my models:/models:ro" in text


def test_a_models_dir_with_a_colon_uses_the_long_volume_syntax():
    service = services(export_compose([COLON_IN_MODELS_DIR]))["odd"]

    assert service["volumes"] == [
        {"type": "bind", "source": "/mnt/disk:2/models", "target": "/models", "read_only": True}
    ]


def test_two_deployments_with_one_name_cannot_share_a_file():
    with pytest.raises(ValueError, match="qwen"):
        export_compose([GPU_ALL, GPU_ALL.model_copy(update={"port": 9999})])


def compose_command() -> list[str] | None:
    """The Compose v2 plugin if present, else Debian's docker-compose (v1.29, which knows GPU reservations)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_accepts_the_exported_file(tmp_path: Path):
    compose = compose_command()
    if compose is None:
        component_unavailable("docker compose", "neither `docker compose` nor `docker-compose` is installed")
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(export_compose(VARIED))

    result = subprocess.run([*compose, "-f", str(compose_file), "config", "--quiet"], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


# ---------------------------------------------------------------- hand-written files


def test_llama_server_flags_in_a_command_string_and_published_ports_import():
    specs, warnings = imported("""
        services:
          qwen:
            image: ghcr.io/ggml-org/llama.cpp:server-cuda
            ports: ["8080:8080"]
            volumes: ["/srv/models:/models:ro"]
            command: -m /models/qwen.gguf --port 8080 -c 8192 -ngl 99 --parallel 2 --flash-attn on -t 8
            deploy:
              resources:
                reservations:
                  devices: [{driver: nvidia, count: 1, capabilities: [gpu]}]
    """)

    assert specs == [
        DeploymentSpec(
            name="qwen",
            model_path="/srv/models/qwen.gguf",
            port=8080,
            gpus=(0,),
            ctx_size=8192,
            n_gpu_layers=99,
            parallel=2,
            extra_args=("--flash-attn", "on", "-t", "8"),
        )
    ]
    assert "service 'qwen': network_mode 'default' replaced by host networking" in warnings
    assert any("published on every interface" in warning for warning in warnings)


def test_an_environment_list_and_the_nvidia_runtime_import():
    specs, _ = imported("""
        services:
          coder:
            image: ghcr.io/ggml-org/llama.cpp:server-cuda
            runtime: nvidia
            network_mode: host
            environment:
              - NVIDIA_VISIBLE_DEVICES=0,1
              - LLAMA_ARG_MODEL=/models/coder/q5.gguf
              - LLAMA_ARG_PORT=8090
              - LLAMA_ARG_HOST=0.0.0.0
              - LLAMA_ARG_N_PARALLEL=3
            volumes: ["~/models:/models"]
    """)

    assert specs == [
        DeploymentSpec(
            name="coder",
            model_path=str(Path.home() / "models/coder/q5.gguf"),
            port=8090,
            host="0.0.0.0",
            gpus=(0, 1),
            parallel=3,
        )
    ]


def test_the_long_volume_syntax_device_ids_and_flags_with_equals_import():
    specs, warnings = imported("""
        services:
          gemma:
            image: ghcr.io/ggml-org/llama.cpp:server-cuda
            network_mode: host
            environment: {LLAMA_ARG_CTX_SIZE: 16384, LLAMA_ARG_HOST: 127.0.0.1}
            volumes:
              - {type: bind, source: /var/lib/models, target: /weights, read_only: true}
            command: ["--model=/weights/gemma/gemma-3-12b.gguf", "--port=8100", "--gpu-layers=48"]
            deploy:
              resources:
                reservations:
                  devices: [{driver: nvidia, device_ids: ["1", "3"], capabilities: [gpu]}]
    """)

    assert specs == [
        DeploymentSpec(
            name="gemma",
            model_path="/var/lib/models/gemma/gemma-3-12b.gguf",
            port=8100,
            gpus=(1, 3),
            ctx_size=16384,
            n_gpu_layers=48,
        )
    ]
    assert warnings == []


@pytest.mark.parametrize(
    ("reservation", "gpus"),
    [
        ("{count: all, capabilities: [gpu]}", "all"),
        ("{count: 2, capabilities: [gpu]}", (0, 1)),
        ("{driver: nvidia}", "all"),
    ],
)
def test_a_gpu_count_reserves_that_many_first_gpus_or_all(reservation: str, gpus: object):
    specs, _ = imported(f"""
        services:
          m:
            network_mode: host
            environment: ["LLAMA_ARG_MODEL=/models/m.gguf", "LLAMA_ARG_PORT=8080", "LLAMA_ARG_HOST=127.0.0.1"]
            image: ghcr.io/ggml-org/llama.cpp:server-cuda
            volumes: ["/srv/models:/models"]
            deploy: {{resources: {{reservations: {{devices: [{reservation}]}}}}}}
    """)

    assert specs[0].gpus == gpus


def test_a_port_published_on_loopback_becomes_the_port_and_host_llama_server_listens_on():
    specs, _ = imported("""
        services:
          m:
            image: ghcr.io/ggml-org/llama.cpp:server
            ports: ["127.0.0.1:9000:8080/tcp"]
            volumes: ["/srv/models:/models"]
            command: ["-m", "/models/m.gguf"]
    """)

    assert (specs[0].port, specs[0].host, specs[0].gpus) == (9000, "127.0.0.1", None)


def test_command_line_flags_win_over_the_environment_as_in_llama_server():
    specs, _ = imported("""
        services:
          m:
            image: ghcr.io/ggml-org/llama.cpp:server
            network_mode: host
            environment: {LLAMA_ARG_MODEL: /models/old.gguf, LLAMA_ARG_PORT: "8080", LLAMA_ARG_HOST: 127.0.0.1}
            volumes: ["/srv/models:/models"]
            command: --model /models/new.gguf --port 8181
    """)

    assert (specs[0].model_path, specs[0].port) == ("/srv/models/new.gguf", 8181)


def test_the_alias_names_the_deployment_when_it_is_a_valid_name():
    specs, warnings = imported("""
        services:
          llm:
            image: ghcr.io/ggml-org/llama.cpp:server
            network_mode: host
            volumes: ["/srv/models:/models"]
            command: -m /models/m.gguf --port 8080 --host 127.0.0.1 --alias qwen2.5-7b
    """)

    assert specs[0].name == "qwen2.5-7b"
    assert warnings == ["service 'llm': alias 'qwen2.5-7b' names the deployment"]


def test_a_cpu_service_offloads_no_layers():
    specs, _ = imported("""
        services:
          m:
            image: ghcr.io/ggml-org/llama.cpp:server
            network_mode: host
            volumes: ["/srv/models:/models"]
            command: -m /models/m.gguf --port 8080 --host 127.0.0.1 -ngl 0
    """)

    assert specs[0].gpus is None
    assert specs[0].n_gpu_layers == 0


def test_models_dir_override_places_a_named_volume_on_this_host():
    specs, _ = imported(
        """
        services:
          m:
            image: ghcr.io/ggml-org/llama.cpp:server
            network_mode: host
            volumes: ["models:/models"]
            command: -m /models/sub/m.gguf --port 8080 --host 127.0.0.1
        volumes: {models: {}}
        """,
        models_dir_override="/mnt/nas/models",
    )

    assert specs[0].model_path == "/mnt/nas/models/sub/m.gguf"


# ---------------------------------------------------------------- warnings and errors


def test_fields_and_variables_corral_does_not_use_are_ignored_with_a_warning_naming_each():
    _, warnings = imported("""
        x-common: {restart: always}
        foo: 1
        services:
          qwen:
            image: ghcr.io/ggml-org/llama.cpp:server
            network_mode: host
            environment: {LLAMA_ARG_MODEL: /models/m.gguf, LLAMA_ARG_PORT: 8080, LLAMA_ARG_HOST: 127.0.0.1,
                          LLAMA_ARG_FLASH_ATTN: "on"}
            volumes: ["/srv/models:/models"]
            logging: {driver: json-file}
            shm_size: 1g
            x-note: fine
    """)

    assert warnings == [
        "top level: unknown field 'foo' ignored",
        "service 'qwen': unknown field 'logging' ignored",
        "service 'qwen': unknown field 'shm_size' ignored",
        "service 'qwen': environment variable 'LLAMA_ARG_FLASH_ATTN' ignored"
        " (Corral sets only the LLAMA_ARG_* it manages)",
    ]


def test_a_service_without_a_model_is_an_error_naming_it():
    with pytest.raises(ComposeError, match="service 'qwen': no model"):
        imported("""
            services:
              qwen:
                image: ghcr.io/ggml-org/llama.cpp:server
                command: --port 8080 -hf ggml-org/gemma-3-1b-it-GGUF
        """)


def test_a_model_outside_every_host_mount_is_an_error_naming_the_service():
    with pytest.raises(ComposeError, match=r"service 'qwen': cannot tell where the model /models/m\.gguf is"):
        imported("""
            services:
              qwen:
                image: ghcr.io/ggml-org/llama.cpp:server
                volumes: ["./models:/models"]
                command: -m /models/m.gguf --port 8080
        """)


def test_gpu_uuids_are_an_error_since_corral_selects_gpus_by_index():
    with pytest.raises(ComposeError, match="service 'qwen': GPUs 'GPU-1234' are not indexes"):
        imported("""
            services:
              qwen:
                volumes: ["/srv/models:/models"]
                command: -m /models/m.gguf
                deploy: {resources: {reservations: {devices: [{device_ids: [GPU-1234], capabilities: [gpu]}]}}}
        """)


def test_an_invalid_setting_is_an_error_naming_the_service():
    with pytest.raises(ComposeError, match="service 'qwen': ctx_size"):
        imported("""
            services:
              qwen:
                volumes: ["/srv/models:/models"]
                command: -m /models/m.gguf -c 12 --port 8080
        """)


@pytest.mark.parametrize("text", ["", "services: {}", "services: [a, b]", "services: {a: [unclosed"])
def test_a_file_without_services_is_an_error(text: str):
    with pytest.raises(ComposeError):
        import_compose(text)
