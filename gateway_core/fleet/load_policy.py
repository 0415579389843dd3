"""How Corral runs a deployment: always up (today's behaviour), or on demand, started when a request for its model
arrives and stopped when it has been idle for `idle_ttl_s`, or when another deployment needs its GPU memory.

The policy is part of the deployment's spec (so a container's label, a compose file's `x-corral` field and a
systemd deployment all carry it), and an operator can change it on an existing deployment: the change is kept
in config.json (`PolicyStore`), which wins over the spec it was deployed with.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.fleet_views import LoadPolicyView
from gateway_core.store.config_store import ConfigStore

log = logging.getLogger("corral.fleet")
LoadMode = Literal["always", "on-demand"]
DEFAULT_IDLE_TTL_S = 600.0
DEFAULT_LOAD_TIMEOUT_S = 120.0
POLICY_TABLE = "deployment_policies"
MEASURED_TABLE = "deployment_memory"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = re.compile(r"(.+?)s")  # what format_duration writes for a fraction: "0.25s", "1e-05s"
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATIONS = ("idle_ttl_s", "load_timeout_s")


class LoadPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: LoadMode = "always"
    idle_ttl_s: float = Field(default=DEFAULT_IDLE_TTL_S, gt=0, le=30 * 86400)  # on-demand: stopped after this idle
    pin: StrictBool = False  # on-demand: never stopped to make room for another (idle unload still applies)
    priority: int = Field(default=0, ge=-1000, le=1000)  # on-demand: the lowest is stopped first to make room
    load_timeout_s: float = Field(default=DEFAULT_LOAD_TIMEOUT_S, gt=0, le=3600)  # start to /health 200

    @field_validator("idle_ttl_s", "load_timeout_s", mode="before")
    @classmethod
    def _text_durations(cls, value: object) -> object:
        """ "10m" wherever a policy is read (a deploy body, a PATCH, a hand-edited label); numbers stay seconds."""
        return parse_duration(value) if isinstance(value, str) else value

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
            seconds = float(_plain_seconds(text))
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(number + unit for number, unit in parts) != text:
                raise ValueError(
                    f"{value!r} is not a duration; give seconds or a duration such as 90s, 10m or 1h30m"
                ) from None
            seconds = sum(float(number) * _UNIT_S[unit] for number, unit in parts)
    if not math.isfinite(seconds):  # "nan", "inf" and 1e999 are numbers to float(), not durations
        raise ValueError(f"{value!r} is not a duration; give seconds or a duration such as 90s, 10m or 1h30m")
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be more than 0")
    return seconds


def _plain_seconds(text: str) -> str:
    """ "90" or "0.25s" as the number float() reads; any other text as it is (float() then refuses it)."""
    if (match := _SECONDS.fullmatch(text)) and not text.endswith("ms"):
        return match.group(1)
    return text


def format_duration(seconds: float) -> str:
    """The shortest spelling `parse_duration` reads back to the same seconds: 600 -> "10m", 90 -> "90s"."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNIT_S[unit] and seconds % _UNIT_S[unit] == 0:
            return f"{int(seconds // _UNIT_S[unit])}{unit}"
    short = f"{seconds:g}"
    return f"{short if float(short) == seconds else repr(seconds)}s"  # :g keeps 6 digits; never lose one


def policy_fields(body: dict[str, Any], where: str = "") -> dict[str, Any]:
    """The policy fields of a request body (a PATCH, or a deploy's `load`), durations read as seconds or text
    such as "10m"; a 400 naming the field (prefixed by `where`) for anything else."""
    unknown = sorted(set(body) - set(LoadPolicy.model_fields))
    if unknown:
        raise GatewayError(
            400,
            f"{where}{unknown[0]}: not a load policy field; use {', '.join(LoadPolicy.model_fields)}",
            param=where + unknown[0],
            code="invalid_field",
        )
    fields = dict(body)
    for name in _DURATIONS:
        value = fields.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            try:
                fields[name] = parse_duration(value)
            except ValueError as error:
                raise GatewayError(400, f"{where}{name}: {error}", param=where + name, code="invalid_field") from error
    return fields


class PolicyStore:
    """Policies changed after deployment, by deployment name, in config.json; they win over the spec's. Also
    the GPU memory each deployment was measured using when it last ran, so a restarted corral-core judges its
    next start by that rather than by the estimate."""

    def __init__(self, store: ConfigStore) -> None:
        self._store = store

    def get(self, name: str) -> LoadPolicy | None:
        """The changed policy; None when there is none, or when config.json's record cannot be read (another
        Corral version's, or edited by hand): then the spec's policy applies, and the record is logged, kept."""
        for record in self._store.all(POLICY_TABLE):
            if record.get("name") == name:
                try:
                    return LoadPolicy.model_validate({k: v for k, v in record.items() if k != "name"})
                except ValidationError as error:
                    log.warning(
                        "config.json: the load policy of %r cannot be read (%s); its deployment's own applies",
                        name,
                        "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()),
                    )
                    return None
        return None

    def put(self, name: str, policy: LoadPolicy) -> None:
        self._store.put(POLICY_TABLE, "name", {"name": name, **policy.model_dump()})

    def remove(self, name: str) -> None:
        self._store.remove(POLICY_TABLE, "name", name)
        self._store.remove(MEASURED_TABLE, "name", name)

    def measured(self, name: str) -> int | None:
        for record in self._store.all(MEASURED_TABLE):
            if record.get("name") == name and isinstance(record.get("bytes"), int) and record["bytes"] > 0:
                return int(record["bytes"])
        return None

    def remember_measured(self, name: str, used_bytes: int) -> None:
        """Written when the deployment stops (or corral-core does), not at every sample."""
        self._store.put(MEASURED_TABLE, "name", {"name": name, "bytes": used_bytes})
