"""systemd units for native llama-server deployments, checked by the real `systemd-analyze verify`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.fleet.systemd import (
    SystemdManager,
    SystemdUnavailable,
    exec_start,
    install_commands,
    parse_show,
    render_unit,
    systemd_running,
    unit_name,
    unit_path,
)
from tests.testbed import component_unavailable

ALL_GPUS = DeploymentSpec(name="qwen", kind="systemd", model_path="/srv/models/qwen2.5-7b.gguf", port=8081)
TWO_GPUS = DeploymentSpec(
    name="llama-70b",
    kind="systemd",
    model_path="/data/models/llama-70b-00001-of-00002.gguf",
    port=8083,
    gpus=(0, 2),
    ctx_size=32768,
    parallel=4,
    extra_args=("--flash-attn", "on"),
)
CPU_IN_HOME = DeploymentSpec(
    name="tiny",
    kind="systemd",
    model_path='/home/ann/my models/50% $tiny "v2".gguf',
    port=8090,
    gpus=None,
    extra_args=("--api-key", "a b;c", ";"),
)


class RecordingRun:
    """Stands in for subprocess.run where nothing may run at all: it records, and any call is a failure."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")


@pytest.fixture
def llama_server(tmp_path: Path) -> str:
    """A real executable in a directory with a space in its name, since verify checks ExecStart's binary."""
    binary = tmp_path / "llama cpp" / "llama-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return str(binary)


def directives(unit: str) -> list[str]:
    return [line for line in unit.splitlines() if line and not line.startswith(("#", "["))]


def verify(unit: str, spec: DeploymentSpec, tmp_path: Path, *, user: bool = False) -> tuple[int, list[str]]:
    """Exit status and stderr lines of `systemd-analyze verify`, which exits 0 even when it reports a bad value."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        component_unavailable("systemd-analyze", "not installed (Debian's systemd package provides it)")
    unit_file = tmp_path / "units" / unit_name(spec)
    unit_file.parent.mkdir(exist_ok=True)
    unit_file.write_text(unit)
    runtime = tmp_path / "runtime"  # a user-mode verify needs a runtime directory, as a login session has
    runtime.mkdir(mode=0o700, exist_ok=True)
    command = [analyze, *(["--user"] if user else []), "verify", str(unit_file)]
    environment = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    return result.returncode, [line for line in result.stderr.splitlines() if not about_installed_units(line)]


def about_installed_units(line: str) -> bool:
    """The only lines ignored: warnings about this machine's own unit files, which verify loads as dependencies."""
    return line.startswith(("/lib/systemd/", "/usr/lib/systemd/", "/etc/systemd/"))


# ---------------------------------------------------------------- systemd-analyze verify


@pytest.mark.parametrize(
    ("spec", "user", "log_dir"),
    [
        (ALL_GPUS, False, None),
        (TWO_GPUS, False, "/var/log/corral"),
        (CPU_IN_HOME, False, "/var/log/corral logs/50%"),
        (TWO_GPUS, True, "/home/ann/.local/state/corral"),
        (CPU_IN_HOME, True, None),
    ],
    ids=["system-all-gpus", "system-two-gpus-log-dir", "system-cpu-spaces-in-paths", "user-log-dir", "user-cpu"],
)
def test_systemd_analyze_verify_finds_nothing_wrong_with_the_unit(
    spec: DeploymentSpec, user: bool, log_dir: str | None, llama_server: str, tmp_path: Path
):
    unit = render_unit(spec, llama_server, user=user, log_dir=log_dir)

    assert verify(unit, spec, tmp_path, user=user) == (0, [])


def test_verify_does_report_a_bad_value_so_the_check_above_is_live(llama_server: str, tmp_path: Path):
    unit = render_unit(ALL_GPUS, llama_server).replace("RestartSec=5s", "RestartSec=fivesec")

    status, problems = verify(unit, ALL_GPUS, tmp_path)

    assert status == 0
    assert any("Failed to parse sec value, ignoring: fivesec" in line for line in problems)


def test_verify_sees_an_unquoted_binary_path_with_a_space_as_a_missing_command(llama_server: str, tmp_path: Path):
    unit = render_unit(ALL_GPUS, llama_server).replace(f'"{llama_server}"', llama_server)

    status, problems = verify(unit, ALL_GPUS, tmp_path)

    assert status != 0
    assert any(line.endswith("/llama is not executable: No such file or directory") for line in problems)


# ---------------------------------------------------------------- unit content


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
@pytest.mark.parametrize("spec", [ALL_GPUS, TWO_GPUS, CPU_IN_HOME], ids=lambda spec: spec.name)
def test_the_unit_never_hides_the_gpus_and_restarts_on_failure(spec: DeploymentSpec, user: bool):
    lines = directives(render_unit(spec, "/usr/local/bin/llama-server", user=user))

    assert not [line for line in lines if line.startswith(("PrivateDevices", "ProtectKernelModules", "DevicePolicy"))]
    assert "Restart=on-failure" in lines
    assert "RestartSec=5s" in lines
    assert {"StartLimitIntervalSec=300", "StartLimitBurst=10", "StartLimitAction=none"} <= set(lines)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (TWO_GPUS, ["Environment=CUDA_VISIBLE_DEVICES=0,2"]),
        (CPU_IN_HOME, ["Environment=CUDA_VISIBLE_DEVICES="]),
        (ALL_GPUS, []),
    ],
    ids=["named-gpus", "cpu-only-sees-none", "all-gpus-unset"],
)
def test_cuda_visible_devices_follows_the_gpus_of_the_spec(spec: DeploymentSpec, expected: list[str]):
    lines = directives(render_unit(spec, "/usr/local/bin/llama-server"))

    assert [line for line in lines if "CUDA_VISIBLE_DEVICES" in line] == expected


def test_named_gpus_are_numbered_as_nvml_numbers_them_not_in_cudas_fastest_first_order():
    named = directives(render_unit(TWO_GPUS, "/usr/local/bin/llama-server"))
    every = directives(render_unit(ALL_GPUS, "/usr/local/bin/llama-server"))

    assert "Environment=CUDA_DEVICE_ORDER=PCI_BUS_ID" in named
    assert not [line for line in every if "CUDA_DEVICE_ORDER" in line], "with every GPU visible, the order is moot"


def test_exec_start_passes_every_setting_as_a_flag_and_the_extra_args_last():
    lines = directives(render_unit(TWO_GPUS, "/usr/local/bin/llama-server"))

    assert (
        "ExecStart=/usr/local/bin/llama-server --model /data/models/llama-70b-00001-of-00002.gguf --port 8083"
        " --host 127.0.0.1 --ctx-size 32768 --n-gpu-layers 999 --parallel 4 --alias llama-70b --flash-attn on"
    ) in lines


def test_exec_start_quotes_spaces_quotes_and_semicolons_and_escapes_percent_and_dollar():
    lines = directives(render_unit(CPU_IN_HOME, "/opt/llama cpp/llama-server"))

    assert (
        'ExecStart="/opt/llama cpp/llama-server" --model "/home/ann/my models/50%% $$tiny \\"v2\\".gguf"'
        " --port 8090 --host 127.0.0.1 --ctx-size 4096 --n-gpu-layers 0 --parallel 1 --alias tiny"
        ' --api-key "a b;c" ";"'
    ) in lines


def test_the_description_names_the_deployment_and_its_model_file():
    lines = directives(render_unit(TWO_GPUS, "/usr/local/bin/llama-server"))

    assert "Description=Corral llama-server llama-70b (llama-70b-00001-of-00002.gguf)" in lines
    assert {"After=network-online.target", "Wants=network-online.target", "Type=simple"} <= set(lines)


def test_logs_go_to_the_journal_unless_a_log_dir_is_given():
    journal = directives(render_unit(ALL_GPUS, "/usr/local/bin/llama-server"))
    to_files = directives(render_unit(ALL_GPUS, "/usr/local/bin/llama-server", log_dir="/var/log/corral"))

    assert not [line for line in journal if line.startswith(("StandardOutput", "StandardError"))]
    assert "StandardOutput=append:/var/log/corral/qwen.log" in to_files
    assert "StandardError=append:/var/log/corral/qwen.log" in to_files
    assert "ReadWritePaths=-/var/log/corral" in to_files


def test_a_system_unit_is_sandboxed_yet_can_read_a_model_under_home():
    lines = directives(render_unit(CPU_IN_HOME, "/usr/local/bin/llama-server"))

    # read-only rather than yes: /home stays readable, so the model there loads.
    assert "ProtectHome=read-only" in lines
    assert {
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "WantedBy=multi-user.target",
    } <= set(lines)


def test_a_user_unit_starts_with_the_session_and_skips_namespace_sandboxing():
    lines = directives(render_unit(ALL_GPUS, "/usr/local/bin/llama-server", user=True))

    assert "WantedBy=default.target" in lines
    assert {"NoNewPrivileges=yes", "RestrictSUIDSGID=yes"} <= set(lines)
    assert not [line for line in lines if line.startswith(("ProtectSystem", "ProtectHome", "PrivateTmp"))]


def test_a_relative_binary_is_refused():
    with pytest.raises(ValueError, match="absolute"):
        render_unit(ALL_GPUS, "llama-server")


# ---------------------------------------------------------------- names, paths, commands


def test_units_are_named_after_the_deployment_in_the_system_or_user_directory(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", "/home/ann/.config")

    assert unit_name(ALL_GPUS) == "corral-qwen.service"
    assert unit_path(ALL_GPUS, user=False) == Path("/etc/systemd/system/corral-qwen.service")
    assert unit_path(ALL_GPUS, user=True) == Path("/home/ann/.config/systemd/user/corral-qwen.service")


def test_install_reloads_systemd_then_enables_and_starts_the_unit():
    assert install_commands(ALL_GPUS, user=False) == [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "corral-qwen.service"],
    ]
    assert install_commands(ALL_GPUS, user=True) == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "corral-qwen.service"],
    ]


def test_a_dry_run_prints_the_unit_and_the_commands_and_writes_and_runs_nothing(tmp_path: Path):
    run = RecordingRun()
    units = tmp_path / "units"
    manager = SystemdManager(run=run, dry_run=True, unit_dir=units)

    lines = manager.install(TWO_GPUS, "/usr/local/bin/llama-server", log_dir=str(tmp_path / "logs"))

    unit = render_unit(TWO_GPUS, "/usr/local/bin/llama-server", log_dir=str(tmp_path / "logs"))
    assert "\n".join(lines).startswith(f"# {units / 'corral-llama-70b.service'}\n{unit}")
    assert lines[-2:] == ["systemctl daemon-reload", "systemctl enable --now corral-llama-70b.service"]
    assert run.calls == []
    assert not units.exists()
    assert not (tmp_path / "logs").exists()


def test_a_dry_run_to_the_system_directory_leaves_it_untouched():
    lines = SystemdManager(run=RecordingRun(), dry_run=True).install(ALL_GPUS, "/usr/local/bin/llama-server")

    assert lines[0] == "# /etc/systemd/system/corral-qwen.service"
    assert not Path("/etc/systemd/system/corral-qwen.service").exists()


def test_systemctl_show_output_becomes_a_unit_status():
    shown = (
        "ActiveState=failed\nSubState=failed\nMainPID=0\nExecMainStartTimestamp=\n"
        "NRestarts=10\nResult=start-limit-hit\nLoadState=loaded\n"
    )

    status = parse_show("corral-qwen.service", shown)

    assert (status.active_state, status.main_pid, status.started_at, status.restarts) == ("failed", None, None, 10)
    assert status.result == "start-limit-hit"
    assert not status.running


# ---------------------------------------------------------------- the real systemctl, on a machine without systemd


@pytest.fixture
def no_systemd() -> None:
    if systemd_running():
        pytest.skip("systemd runs here: these tests check the refusal on a machine without it")


@pytest.mark.usefixtures("no_systemd")
def test_installing_without_systemd_fails_clearly_and_writes_nothing(tmp_path: Path):
    manager = SystemdManager(unit_dir=tmp_path / "units")

    with pytest.raises(SystemdUnavailable, match="use --dry-run to see the unit, or deploy as a container"):
        manager.install(ALL_GPUS, "/usr/local/bin/llama-server", log_dir=str(tmp_path / "logs"))
    assert not (tmp_path / "units").exists()
    assert not (tmp_path / "logs").exists()


@pytest.mark.usefixtures("no_systemd")
@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
@pytest.mark.parametrize("action", ["start", "stop", "restart", "status"])
def test_the_real_systemctl_without_systemd_raises_systemd_unavailable(action: str, user: bool):
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed, so there is no real systemctl to run")
    manager = SystemdManager(user=user)

    with pytest.raises(SystemdUnavailable, match="systemctl is not available here"):
        getattr(manager, action)("qwen")


@pytest.mark.usefixtures("no_systemd")
def test_uninstalling_without_systemd_fails_clearly_and_removes_nothing(tmp_path: Path):
    unit_file = tmp_path / "corral-qwen.service"
    unit_file.write_text("[Unit]\n")

    with pytest.raises(SystemdUnavailable):
        SystemdManager(unit_dir=tmp_path).uninstall("qwen")
    assert unit_file.exists()


def test_a_router_units_command_line_names_its_models_directory_and_no_model():
    spec = DeploymentSpec(
        name="shelf", kind="systemd", model_path="/srv/models", port=9100, router={"models_max": 2}, gpus=None
    )

    line = exec_start(spec, "/usr/bin/llama-server")

    assert "--models-dir /srv/models --models-max 2 --port 9100" in line
    assert "--model " not in line
    assert "--alias" not in line
