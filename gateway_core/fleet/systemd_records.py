"""systemd deployments as config.json keeps them, so a restarted corral-core still knows and drives them.

A container carries its spec in a label the engine keeps; a systemd unit has no such place Corral can read back,
so each systemd deployment is a record of its own (`systemd_deployments`): its spec and how its unit was
installed (a user or a system unit, the llama-server binary, the log directory). Written when the unit is
installed, removed with the deployment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gateway_core.fleet.deployment import DeploymentSpec
from gateway_core.store.config_store import ConfigStore

log = logging.getLogger("corral.fleet")
SYSTEMD_TABLE = "systemd_deployments"


@dataclass(frozen=True)
class SystemdDeployment:
    spec: DeploymentSpec
    user: bool  # a user unit (systemctl --user) rather than a system one
    binary: str  # the llama-server its unit runs
    log_dir: str | None  # None: the journal

    @property
    def name(self) -> str:
        return self.spec.name

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec.model_dump(mode="json"),
            "user": self.user,
            "binary": self.binary,
            "log_dir": self.log_dir,
        }


class SystemdRecords:
    """The systemd deployments, read once from config.json and written through on every change."""

    def __init__(self, store: ConfigStore | None) -> None:
        self._store = store  # None: kept in memory only (a fleet manager built without config.json)
        self._deployments: dict[str, SystemdDeployment] = {}
        for record in store.all(SYSTEMD_TABLE) if store is not None else []:
            deployment = _from_record(record)
            if deployment is not None:
                self._deployments[deployment.name] = deployment

    def __contains__(self, name: object) -> bool:
        return name in self._deployments

    def get(self, name: str) -> SystemdDeployment | None:
        return self._deployments.get(name)

    def specs(self) -> dict[str, DeploymentSpec]:
        return {name: deployment.spec for name, deployment in self._deployments.items()}

    def put(self, deployment: SystemdDeployment) -> None:
        if self._store is not None:
            self._store.put(SYSTEMD_TABLE, "name", deployment.record())
        self._deployments[deployment.name] = deployment

    def remove(self, name: str) -> None:
        if self._store is not None:
            self._store.remove(SYSTEMD_TABLE, "name", name)
        self._deployments.pop(name, None)


def _from_record(record: dict[str, Any]) -> SystemdDeployment | None:
    """A record written by another Corral version may not validate: it is kept on disk and logged, not driven."""
    try:
        spec = DeploymentSpec.model_validate(record.get("spec"))
        binary, log_dir = record.get("binary"), record.get("log_dir")
        if not isinstance(binary, str) or not (log_dir is None or isinstance(log_dir, str)):
            raise ValueError("binary must be a path and log_dir a path or null")
    except (ValidationError, ValueError) as error:
        log.warning(
            "config.json: the systemd deployment %r cannot be read (%s); it is left as it is and not driven",
            record.get("name"),
            str(error).splitlines()[0],
        )
        return None
    return SystemdDeployment(spec=spec, user=bool(record.get("user")), binary=binary, log_dir=log_dir)
