"""A compose service's `x-corral` extension field: what compose has no field for, kept so a round trip is lossless.

    x-corral:
      load: {mode: on-demand, idle_ttl: 10m, pin: false, priority: 0, load_timeout: 2m}
      router: {models_max: 1}

Compose ignores `x-` fields. Each part is written only when it is not the default, durations as text
(`format_duration`), read back with `parse_duration`. Unknown keys are warnings, so a file written by a newer
Corral still imports; a value that is wrong is an error (`ExtensionError`, which compose.py names the service in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from gateway_core.fleet.deployment import DeploymentSpec, RouterSpec
from gateway_core.fleet.load_policy import LoadPolicy, format_duration, parse_duration

X_CORRAL = "x-corral"
_PARTS = ("load", "router")
# load's keys: the policy's fields, durations without their `_s` (they are text such as "10m")
_LOAD_KEYS = {"mode": "mode", "idle_ttl": "idle_ttl_s", "pin": "pin", "priority": "priority",
              "load_timeout": "load_timeout_s"}  # fmt: skip
_DURATION_KEYS = frozenset({"idle_ttl", "load_timeout"})

Warn = Callable[[str], None]


class ExtensionError(ValueError):
    """The x-corral field cannot be read; the message names the key at fault."""


def extension(spec: DeploymentSpec) -> dict[str, Any]:
    """The x-corral field of the spec's service; empty when the policy and router mode are the defaults."""
    written: dict[str, Any] = {}
    if spec.load != LoadPolicy():
        policy = spec.load.model_dump()
        written["load"] = {
            key: format_duration(policy[field]) if key in _DURATION_KEYS else policy[field]
            for key, field in _LOAD_KEYS.items()
        }
    if spec.router is not None:
        written["router"] = spec.router.model_dump()
    return written


def extension_fields(raw: Any, warn: Warn) -> dict[str, Any]:
    """The spec fields an x-corral field sets (`load`, `router`); unknown keys are warned about and ignored."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ExtensionError(f"{X_CORRAL} must be a map with load and router")
    for key in raw:
        if key not in _PARTS:
            warn(f"{X_CORRAL}: unknown field '{key}' ignored (Corral reads {', '.join(_PARTS)})")
    fields: dict[str, Any] = {}
    if raw.get("load") is not None:
        fields["load"] = _load_policy(raw["load"], warn)
    if raw.get("router") is not None:
        fields["router"] = router_spec(raw["router"], warn)
    return fields


def _load_policy(raw: Any, warn: Warn) -> LoadPolicy:
    if not isinstance(raw, dict):
        raise ExtensionError(f"{X_CORRAL}.load must be a map such as {{mode: on-demand, idle_ttl: 10m}}")
    policy: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _LOAD_KEYS:
            warn(f"{X_CORRAL}.load: unknown field '{key}' ignored (Corral reads {', '.join(_LOAD_KEYS)})")
            continue
        if key in _DURATION_KEYS and isinstance(value, str | int | float):
            try:
                value = parse_duration(value)
            except ValueError as error:
                raise ExtensionError(f"{X_CORRAL}.load.{key}: {error}") from error
        policy[_LOAD_KEYS[key]] = value
    try:
        return LoadPolicy.model_validate(policy)
    except ValidationError as error:
        raise ExtensionError(f"{X_CORRAL}.load: {problems(error)}") from error


def router_spec(raw: Any, warn: Warn) -> RouterSpec:
    """x-corral's router part (or a hand-written service's --models-max) as a RouterSpec."""
    if not isinstance(raw, dict):
        raise ExtensionError(f"{X_CORRAL}.router must be a map such as {{models_max: 1}}")
    known = {key: value for key, value in raw.items() if key in RouterSpec.model_fields}
    for key in raw.keys() - known.keys():
        warn(f"{X_CORRAL}.router: unknown field '{key}' ignored (Corral reads {', '.join(RouterSpec.model_fields)})")
    try:
        return RouterSpec.model_validate(known)
    except ValidationError as error:
        raise ExtensionError(f"{X_CORRAL}.router: {problems(error)}") from error


def problems(error: ValidationError) -> str:
    """A validation error's problems on one line: "field: message; ..."."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors())
