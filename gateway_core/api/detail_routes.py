"""GET /fleet/deployments/{name}/detail: one deployment in full for the console's detail view, secrets masked here.

Masking happens in corral-core so that a secret never reaches the console, the screen or a copied JSON: an
environment variable whose name looks secret (KEY, TOKEN, SECRET, PASSWORD), a command-line value after such a
flag, and any value or log text that looks like a key (sk-…, whsec_…, hf_…, a Bearer token) read as MASKED.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway_core.api.responses import json_response
from gateway_core.contracts.detail_views import MASKED, DeploymentDetailView, HealthCheckView
from gateway_core.contracts.errors import GatewayError
from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.fleet.inventory import info_from_attrs
from gateway_core.fleet.manager import FleetManager
from gateway_core.fleet.systemd import exec_start

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# What keys look like on their own: OpenAI-style sk-…, webhook secrets, Hugging Face and GitHub tokens, bearers.
_SECRET_VALUE = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{8,}|whsec_[A-Za-z0-9+/=]{8,}|hf_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{8,})"
    r"|(?<=Bearer )[A-Za-z0-9._\-+/=]{8,}"
)
_ERROR_LINE = re.compile(r"\b(error|errors|failed|failure|fatal|exception|panic|abort(ed)?)\b", re.IGNORECASE)
LOG_LINES_READ = 400  # the log's tail searched for recent errors
RECENT_ERRORS = 10
HEALTH_CHECKS = 5
DETAIL_PATH = "/fleet/deployments/{name}/detail"


def mask_text(text: str) -> str:
    """`text` with anything that looks like a key replaced by MASKED."""
    return _SECRET_VALUE.sub(MASKED, text)


def mask_environment(variables: Iterable[str]) -> dict[str, str]:
    """Docker's NAME=value list as a mapping, the value of every secret-looking name (or value) MASKED."""
    environment: dict[str, str] = {}
    for variable in variables:
        name, _, value = variable.partition("=")
        environment[name] = MASKED if _SECRET_NAME.search(name) and value else mask_text(value)
    return environment


def mask_command(words: Iterable[str]) -> list[str]:
    """A command line with the value after a secret-looking flag (--api-key V, --hf-token=V) MASKED."""
    masked: list[str] = []
    after_secret_flag = False
    for word in words:
        flag, equals, _ = word.partition("=")
        if after_secret_flag:
            masked.append(MASKED)
            after_secret_flag = False
        elif word.startswith("-") and _SECRET_NAME.search(flag):
            masked.append(f"{flag}={MASKED}" if equals else word)
            after_secret_flag = not equals and not word.endswith("-file")  # a file's path is no secret
        else:
            masked.append(mask_text(word))
    return masked


def recent_errors(log: str, limit: int = RECENT_ERRORS) -> list[str]:
    """The log's last lines that name an error or a failure, masked, newest last."""
    found = [line.strip() for line in log.splitlines() if _ERROR_LINE.search(line)]
    return [mask_text(line) for line in found[-limit:]]


def container_detail(attrs: dict[str, Any], log: str) -> DeploymentDetailView:
    info = info_from_attrs(attrs)
    config = attrs.get("Config") or {}
    state = attrs.get("State") or {}
    health = state.get("Health") or {}
    exited = state.get("FinishedAt") and not str(state.get("FinishedAt")).startswith("0001-")
    checks: list[HealthCheckView] = [
        {
            "started_at": check.get("Start"),
            "exit_code": check.get("ExitCode"),
            "output": mask_text(str(check.get("Output") or "").strip()),
        }
        for check in (health.get("Log") or [])[-HEALTH_CHECKS:]
    ]
    return {
        "name": info.name,
        "kind": "container",
        "managed": info.managed,
        "image": info.image,
        "container": info.container,
        "container_id": info.id,
        "state": info.state,
        "health": info.health,
        "command": mask_command([*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]),
        "environment": mask_environment(config.get("Env") or []),
        "spec": _masked_spec(info.spec),
        "started_at": info.started_at,
        "finished_at": str(state["FinishedAt"]) if exited else None,
        "exit_code": int(state.get("ExitCode") or 0) if exited else None,
        "restart_count": int(attrs.get("RestartCount") or 0),
        "oom_killed": bool(state.get("OOMKilled")),
        "error": mask_text(str(state.get("Error") or "")),
        "health_checks": checks,
        "recent_errors": recent_errors(log),
    }


def systemd_detail(spec: DeploymentSpec, binary: str, log: str) -> DeploymentDetailView:
    """A systemd deployment has no engine record: its command and environment are those its unit runs."""
    environment = spec.llama_env()
    devices = spec.cuda_visible_devices()
    if devices is not None:
        environment["CUDA_VISIBLE_DEVICES"] = devices
    return {
        "name": spec.name,
        "kind": "systemd",
        "managed": True,
        "image": None,
        "container": None,
        "container_id": None,
        "state": "systemd",
        "health": "none",
        "command": mask_command(shlex.split(exec_start(spec, binary))),
        "environment": mask_environment(f"{name}={value}" for name, value in environment.items()),
        "spec": _masked_spec(dict(spec.view())),
        "started_at": None,
        "finished_at": None,
        "exit_code": None,
        "restart_count": 0,
        "oom_killed": False,
        "error": "",
        "health_checks": [],
        "recent_errors": recent_errors(log),
    }


def _masked_spec(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    extra = spec.get("extra_args")
    return {**spec, "extra_args": mask_command(extra)} if isinstance(extra, list) else dict(spec)


class DeploymentDetailRoutes:
    """FleetApi mounts `detail` at DETAIL_PATH, under its error handling (an unknown name is a 404 there)."""

    def __init__(self, fleet: FleetManager) -> None:
        self._fleet = fleet

    async def detail(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        attrs = await self._fleet.inspect(name)  # raises DeploymentNotFound (a 404) for an unknown name
        log = await self._fleet.log_tail(name, LOG_LINES_READ)
        if attrs is not None:
            return json_response(container_detail(attrs, log))
        record = self._fleet.systemd_deployment(name)
        if record is None:
            raise GatewayError(404, f"no deployment named '{name}'", param="name", code="deployment_not_found")
        return json_response(systemd_detail(record.spec, record.binary, log))
