"""docker-compose files keep what compose has no field for (the load policy, router mode) in `x-corral`."""

from __future__ import annotations

from textwrap import dedent
from typing import Any

import pytest
import yaml

from gateway_core.fleet.compose import ComposeError, export_compose, import_compose
from gateway_core.fleet.deployment import DeploymentSpec, RouterSpec
from gateway_core.fleet.load_policy import LoadPolicy

ALWAYS = DeploymentSpec(name="qwen", model_path="/srv/models/qwen2.5-7b-q4_k_m.gguf", port=8081)
ON_DEMAND = DeploymentSpec(
    name="llama-8b",
    model_path="/srv/models/llama-8b.gguf",
    port=8082,
    gpus=(0,),
    load=LoadPolicy(mode="on-demand", idle_ttl_s=300, pin=True, priority=-5, load_timeout_s=90),
)
ODD_DURATIONS = DeploymentSpec(
    name="tiny",
    model_path="/opt/llm/tiny.gguf",
    port=8083,
    gpus=None,
    load=LoadPolicy(mode="on-demand", idle_ttl_s=5400, load_timeout_s=0.25),
)
ROUTER = DeploymentSpec(
    name="many", model_path="/srv/models/router", port=8084, router=RouterSpec(models_max=2), load=ON_DEMAND.load
)
WITH_POLICY = [ON_DEMAND, ODD_DURATIONS, ROUTER]
PLAIN_SERVICE = """
    services:
      qwen:
        image: ghcr.io/ggml-org/llama.cpp:server
        network_mode: host
        environment: {LLAMA_ARG_MODEL: /models/m.gguf, LLAMA_ARG_PORT: 8085, LLAMA_ARG_HOST: 127.0.0.1}
        volumes: ["/srv/models:/models:ro"]
"""
ROUTER_SERVICE = PLAIN_SERVICE.replace("/models/m.gguf", "/models/router")


def service(spec: DeploymentSpec) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(export_compose([spec]))["services"]
    return services[spec.name]


def with_x_corral(extension: str, service: str = PLAIN_SERVICE) -> str:
    """The service (PLAIN_SERVICE's shape) with an x-corral field (YAML, indented as a service field)."""
    return dedent(service) + "".join(f"    {line}\n" for line in dedent(extension).strip().splitlines())


@pytest.mark.parametrize("spec", WITH_POLICY, ids=lambda spec: spec.name)
def test_a_deployment_with_a_policy_or_a_router_imports_back_unchanged_and_without_warnings(spec: DeploymentSpec):
    result = import_compose(export_compose([spec]))

    assert result.specs == [spec]
    assert result.warnings == []


def test_a_fleet_of_on_demand_and_always_deployments_round_trips_in_one_file():
    fleet = [ALWAYS, *WITH_POLICY]

    assert import_compose(export_compose(fleet)).specs == fleet


def test_the_policy_is_written_in_x_corral_with_durations_as_people_write_them():
    assert service(ON_DEMAND)["x-corral"] == {
        "load": {"mode": "on-demand", "idle_ttl": "5m", "pin": True, "priority": -5, "load_timeout": "90s"}
    }
    assert service(ODD_DURATIONS)["x-corral"]["load"]["idle_ttl"] == "90m"
    assert service(ODD_DURATIONS)["x-corral"]["load"]["load_timeout"] == "0.25s"


def test_router_mode_is_written_in_x_corral_beside_the_policy():
    assert service(ROUTER)["x-corral"]["router"] == {"models_max": 2}


def test_an_always_up_deployment_has_no_x_corral_field():
    assert "x-corral" not in service(ALWAYS)


def test_hand_written_durations_in_seconds_or_text_are_read():
    (spec,) = import_compose(
        with_x_corral("""
            x-corral:
              load: {mode: on-demand, idle_ttl: 1h30m, load_timeout: 45}
        """)
    ).specs

    assert spec.load == LoadPolicy(mode="on-demand", idle_ttl_s=5400, load_timeout_s=45)


def test_unknown_keys_in_x_corral_are_warnings_naming_them_not_errors():
    result = import_compose(
        with_x_corral(
            """
            x-corral:
              load: {mode: on-demand, ttl: 10m, pin: true}
              router: {models_max: 1, sleep: 5}
              groups: [a, b]
            """,
            ROUTER_SERVICE,
        )
    )

    assert result.warnings == [
        "service 'qwen': x-corral: unknown field 'groups' ignored (Corral reads load, router)",
        "service 'qwen': x-corral.load: unknown field 'ttl' ignored"
        " (Corral reads mode, idle_ttl, pin, priority, load_timeout)",
        "service 'qwen': x-corral.router: unknown field 'sleep' ignored (Corral reads models_max)",
    ]
    (spec,) = result.specs
    assert spec.load == LoadPolicy(mode="on-demand", pin=True)
    assert spec.router == RouterSpec(models_max=1)


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ("x-corral: {load: {mode: sometimes}}", r"service 'qwen': x-corral\.load: mode: Input should be"),
        ("x-corral: {load: {mode: on-demand, idle_ttl: soon}}", r"x-corral\.load\.idle_ttl: 'soon' is not a duration"),
        ("x-corral: {load: {idle_ttl: 0}}", r"x-corral\.load\.idle_ttl: 0: a duration must be more than 0"),
        ("x-corral: {load: {pin: maybe}}", r"x-corral\.load: pin: Input should be a valid boolean"),
        ("x-corral: {router: {models_max: -1}}", r"x-corral\.router: models_max: Input should be greater"),
        ("x-corral: [load]", r"service 'qwen': x-corral must be a map"),
        ("x-corral: {load: on-demand}", r"x-corral\.load must be a map"),
    ],
    ids=["mode", "duration-text", "duration-zero", "pin", "models-max", "not-a-map", "load-not-a-map"],
)
def test_an_invalid_x_corral_value_is_an_error_naming_the_service_and_the_field(extension: str, message: str):
    with pytest.raises(ComposeError, match=message):
        import_compose(with_x_corral(extension))


def test_a_hand_written_router_service_with_models_dir_imports_as_router_mode():
    (spec,) = import_compose(
        dedent("""
            services:
              many:
                image: ghcr.io/ggml-org/llama.cpp:server
                network_mode: host
                command: [--models-dir, /models/router, --models-max, "3", --port, "8086", --host, 127.0.0.1]
                volumes: ["/srv/models:/models:ro"]
        """)
    ).specs

    assert (spec.model_path, spec.router) == ("/srv/models/router", RouterSpec(models_max=3))


def test_a_service_that_sets_no_port_and_publishes_none_is_refused_rather_than_given_a_guess():
    with pytest.raises(ComposeError, match=r"service 'qwen': no port: set LLAMA_ARG_PORT or pass --port"):
        import_compose(PLAIN_SERVICE.replace("LLAMA_ARG_PORT: 8085, ", ""))


@pytest.mark.parametrize("container_port", ["8080", "9931"])
def test_with_no_port_set_the_one_published_port_is_llama_servers_whichever_its_default(container_port: str):
    text = f"""
        services:
          qwen:
            image: ghcr.io/ggml-org/llama.cpp:server
            ports: ["127.0.0.1:9000:{container_port}"]
            volumes: ["/srv/models:/models"]
            command: ["-m", "/models/m.gguf"]
    """

    result = import_compose(dedent(text))

    assert (result.specs[0].port, result.specs[0].host) == (9000, "127.0.0.1")
    assert (
        f"service 'qwen': no port given; llama-server is taken to be the one published port ({container_port}),"
        " and listens on 9000"
    ) in result.warnings


def test_several_published_ports_and_no_port_set_are_refused():
    text = """
        services:
          qwen:
            image: ghcr.io/ggml-org/llama.cpp:server
            ports: ["9000:8080", "9001:9931"]
            volumes: ["/srv/models:/models"]
            command: ["-m", "/models/m.gguf"]
    """
    with pytest.raises(ComposeError, match="several ports are published and none is named: set LLAMA_ARG_PORT"):
        import_compose(dedent(text))


def test_a_duration_that_is_neither_text_nor_a_number_is_an_error_not_a_crash():
    with pytest.raises(
        ComposeError, match=r"service 'qwen': x-corral\.load: idle_ttl_s: Input should be a valid number"
    ):
        import_compose(with_x_corral("x-corral: {load: {mode: on-demand, idle_ttl: [10m]}}"))
