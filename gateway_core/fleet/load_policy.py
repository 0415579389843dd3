"""How Corral runs a deployment: always up (today's behaviour), or on demand, started when a request for its model
arrives and stopped when it has been idle for `idle_ttl_s`, or when another deployment needs its GPU memory.

The policy is part of the deployment's spec (so a container's label, a compose file's `x-corral` field and a
systemd deployment all carry it), and an operator can change it on an existing deployment: the change is kept
in config.json (`PolicyStore`), which wins over the spec it was deployed with.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from gateway_core.contracts.fleet_views import LoadPolicyView
from gateway_core.store.config_store import ConfigStore

LoadMode = Literal["always", "on-demand"]
DEFAULT_IDLE_TTL_S = 600.0
DEFAULT_LOAD_TIMEOUT_S = 120.0
POLICY_TABLE = "deployment_policies"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class LoadPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: LoadMode = "always"
    idle_ttl_s: float = Field(default=DEFAULT_IDLE_TTL_S, gt=0, le=30 * 86400)  # on-demand: stopped after this idle
    pin: StrictBool = False  # on-demand: never stopped to make room for another (idle unload still applies)
    priority: int = Field(default=0, ge=-1000, le=1000)  # on-demand: the lowest is stopped first to make room
    load_timeout_s: float = Field(default=DEFAULT_LOAD_TIMEOUT_S, gt=0, le=3600)  # start to /health 200

    @property
    def on_demand(self) -> bool:
        return self.mode == "on-demand"

    def view(self) -> LoadPolicyView:
        return {
            "mode": self.mode,
            "idle_ttl_s": self.idle_ttl_s,
            "pin": self.pin,
            "priority": self.priority,
            "load_timeout_s": self.load_timeout_s,
        }


def parse_duration(value: str | float | int) -> float:
    """Seconds from `600`, `"600"`, `"90s"`, `"10m"`, `"1h30m"` or `"250ms"`; ValueError says what is accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; give seconds or a duration such as 90s, 10m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(number + unit for number, unit in parts) != text:
                raise ValueError(
                    f"{value!r} is not a duration; give seconds or a duration such as 90s, 10m or 1h30m"
                ) from None
            seconds = sum(float(number) * _UNIT_S[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be more than 0")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest spelling `parse_duration` reads back to the same seconds: 600 -> "10m", 90 -> "90s"."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNIT_S[unit] and seconds % _UNIT_S[unit] == 0:
            return f"{int(seconds // _UNIT_S[unit])}{unit}"
    return f"{seconds:g}s"


class PolicyStore:
    """Policies changed after deployment, by deployment name, in config.json; they win over the spec's."""

    def __init__(self, store: ConfigStore) -> None:
        self._store = store

    def get(self, name: str) -> LoadPolicy | None:
        for record in self._store.all(POLICY_TABLE):
            if record.get("name") == name:
                return LoadPolicy.model_validate({k: v for k, v in record.items() if k != "name"})
        return None

    def put(self, name: str, policy: LoadPolicy) -> None:
        self._store.put(POLICY_TABLE, "name", {"name": name, **policy.model_dump()})

    def remove(self, name: str) -> None:
        self._store.remove(POLICY_TABLE, "name", name)
