"""Hypothesis strategies for the admin API: every route that reads a body, a path or a query, given valid,
wrong and broken input.

Each body has a `BodySchema`: its valid bodies and, per field, values that field must refuse. The admin models
are pydantic's, in lax mode (the console's forms validate typed text with them), so "refuse" means what lax
mode refuses: "5" is a fine integer and "yes" a fine boolean there, and neither is generated as a mistake.

Nothing generated here can act on the machine: base URLs point at 127.0.0.1 (or fail validation), a systemd
deployment is always a dry run (or fails validation before it could install), systemd start/stop/restart only
get names that fail validation, and the catalog only scans temporary or missing directories. In-process the
gateway reaches no Docker engine (tests/testbed/in_process.py), so a container deployment that validates gets
a 503 and starts nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

import orjson
from hypothesis import strategies as st

from tests.fuzz.strategies import (
    ANY_VALUE,
    DROP,
    JSON_VALUES,
    ODD_DOCUMENTS,
    ROUTE_PATHS,
    FuzzRequest,
    Route,
    body_bytes,
    encode,
    mutate,
    unknown_fields,
    values_of_kind,
)

JSON_HEADERS: Final = (("content-type", "application/json"),)
CLOSED_PORT_URL: Final = "http://127.0.0.1:9"  # the discard port: nothing listens, a probe fails at once
PROVIDER_TYPES: Final = ("llama-server", "ollama", "openai", "anthropic")
UNIT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # what systemd actions accept (fleet/systemd.py)

# -- values pydantic's lax mode refuses ----------------------------------------------------------------------

_NOT_NUMERIC = st.text(max_size=12).filter(lambda text: not _numeric(text))
_LAX_TRUTH = {"0", "1", "true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"}
_CONTAINERS = values_of_kind("array").filter(bool) | values_of_kind("object").filter(bool)


def _numeric(text: str) -> bool:
    try:
        float(text.replace("_", "x"))  # pydantic refuses "1_000"; float() accepts it
    except ValueError:
        return False
    return True


def not_a_string(nullable: bool = True) -> st.SearchStrategy[Any]:
    kinds = st.booleans() | st.integers() | values_of_kind("number") | _CONTAINERS
    return kinds if nullable else kinds | st.none()


def not_an_integer(low: int | None = None, high: int | None = None, nullable: bool = True) -> st.SearchStrategy[Any]:
    wrong = values_of_kind("number") | _NOT_NUMERIC | _CONTAINERS
    if low is not None:
        wrong |= st.integers(max_value=low - 1)
    if high is not None:
        wrong |= st.integers(min_value=high + 1, max_value=2**63 - 1)
    return wrong if nullable else wrong | st.none()


def not_a_number(nullable: bool = True) -> st.SearchStrategy[Any]:
    wrong = _NOT_NUMERIC | _CONTAINERS
    return wrong if nullable else wrong | st.none()


def not_a_boolean() -> st.SearchStrategy[Any]:
    return (
        st.none()
        | st.integers().filter(lambda number: number not in (0, 1))
        | values_of_kind("number")
        | st.text(max_size=8).filter(lambda text: text.strip().lower() not in _LAX_TRUTH)
        | _CONTAINERS
    )


def one_of_values(*wrong: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(wrong)


# -- bodies ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodySchema:
    """Valid bodies for a route, and for each field, values it must refuse with a 400 naming it."""

    valid: st.SearchStrategy[dict[str, Any]]
    wrong: Mapping[str, st.SearchStrategy[Any]]
    required: tuple[str, ...] = ()
    forbids_unknown: bool = True  # extra="forbid": an unknown field is a 400 naming it
    fixed: Mapping[str, Any] = field(default_factory=dict)  # set after every mutation (what keeps a case safe)


@dataclass(frozen=True)
class AdminMistake:
    body: dict[str, Any]
    param: str
    value: Any


@st.composite
def admin_mistakes(draw: st.DrawFn, schema: BodySchema) -> AdminMistake:
    """A valid body with one field refused: a wrong value, a required field dropped, or an unknown field."""
    body = draw(schema.valid)
    choice = draw(st.integers(0, 9))
    if choice == 0 and schema.required:
        name = draw(st.sampled_from(schema.required))
        return AdminMistake({**mutate(body, (name,), DROP), **schema.fixed}, name, DROP)
    if choice == 1 and schema.forbids_unknown:
        (name, value), *_ = draw(unknown_fields()).items()
        return AdminMistake({**body, name: value, **schema.fixed}, name, value)
    name = draw(st.sampled_from(sorted(schema.wrong)))
    value = draw(schema.wrong[name])
    return AdminMistake({**body, name: value, **schema.fixed}, name, value)


@st.composite
def admin_body_bytes(draw: st.DrawFn, schema: BodySchema) -> bytes:
    """Valid, one mistake, several mutations with any value, not an object, or not JSON at all."""
    choice = draw(st.integers(0, 9))
    if choice < 2:
        return encode({**draw(schema.valid), **schema.fixed})
    if choice < 6:
        return encode(draw(admin_mistakes(schema)).body)
    if choice < 8:
        body: dict[str, Any] = draw(schema.valid)
        for _ in range(draw(st.integers(1, 3))):
            name = draw(st.sampled_from(sorted({*schema.wrong, *body})))
            body = mutate(body, (name,), draw(ANY_VALUE | st.just(DROP)))
        return encode({**body, **schema.fixed})
    if choice == 8:
        return encode(draw(JSON_VALUES.filter(lambda value: not isinstance(value, dict))))
    return draw(st.sampled_from(ODD_DOCUMENTS) | st.binary(max_size=40))


_PROVIDER_NAME = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z")
_BAD_URLS = one_of_values(
    "",
    "127.0.0.1:9",
    "ftp://127.0.0.1:9",
    "http://",
    "http:///v1",
    "http://[::1",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:-1",
    "http://127.0.0.1:abc",
    "http://127.0.0.1:9/a path",
    "http://127.0.0.1:9\x00",
    "javascript:alert(1)",
)
_VALID_URLS = one_of_values(
    CLOSED_PORT_URL,
    "https://127.0.0.1:9/v1",
    "http://localhost:9",
    "http://[::1]:9",
    "http://user:secret@127.0.0.1:9",
    "http://127.0.0.1:9/v1/?x=1",
)
_PROVIDER_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "api_key_env": st.none() | st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,15}\Z"),
    "models": st.dictionaries(_PROVIDER_NAME, _PROVIDER_NAME, max_size=2),
    "priority": st.integers(-1000, 1000),
    "weight": st.integers(1, 1000),
    "max_concurrency": st.none() | st.integers(1, 100_000),
    "enabled": st.booleans(),
}
_PROVIDER_WRONG: dict[str, st.SearchStrategy[Any]] = {
    "name": not_a_string(nullable=False)
    | one_of_values("", "has space", "-leading", "a/b", "x" * 65, "ünïcode", "a\nb"),
    "type": not_a_string(nullable=False) | st.text(max_size=12).filter(lambda text: text not in PROVIDER_TYPES),
    "base_url": not_a_string(nullable=False) | _BAD_URLS,
    "api_key_env": not_a_string() | one_of_values("", "1BAD", "a-b", "A B", "$HOME"),
    "api_key": not_a_string(),
    "models": st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | values_of_kind("array").filter(bool)
    | st.dictionaries(_PROVIDER_NAME, not_a_string(nullable=False), min_size=1, max_size=2),
    "priority": not_an_integer(-1000, 1000, nullable=False),
    "weight": not_an_integer(1, 1000, nullable=False),
    "max_concurrency": not_an_integer(1, 100_000),
    "enabled": not_a_boolean(),
}
PROVIDER = BodySchema(
    valid=st.fixed_dictionaries(
        {"name": _PROVIDER_NAME, "type": st.sampled_from(PROVIDER_TYPES), "base_url": _VALID_URLS},
        optional=_PROVIDER_OPTIONS,
    ),
    wrong=_PROVIDER_WRONG,
    required=("name", "type", "base_url"),
)
# PATCH /providers/{name}: any subset of the fields, the name only unchanged (a rename is refused).
PROVIDER_CHANGES = BodySchema(
    valid=st.fixed_dictionaries(
        {}, optional={"type": st.sampled_from(PROVIDER_TYPES), "base_url": _VALID_URLS, **_PROVIDER_OPTIONS}
    ),
    wrong={name: wrong for name, wrong in _PROVIDER_WRONG.items() if name != "name"},
)

_KEY_NAME = st.text(st.characters(codec="utf-8"), min_size=1, max_size=64)
_KEY_LIMITS: dict[str, st.SearchStrategy[Any]] = {
    "models": st.none() | st.lists(_PROVIDER_NAME, max_size=3),
    "rpm": st.none() | st.integers(1, 10**6),
    "tpm": st.none() | st.integers(1, 10**9),
    "max_concurrency": st.none() | st.integers(1, 1000),
    "expires_in_days": st.none() | st.floats(0.001, 3650),
}
_KEY_WRONG: dict[str, st.SearchStrategy[Any]] = {
    "models": st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | values_of_kind("object").filter(bool)
    | st.lists(not_a_string(nullable=False), min_size=1, max_size=2),
    "rpm": not_an_integer(1),
    "tpm": not_an_integer(1),
    "max_concurrency": not_an_integer(1),
    # Beyond a century, or not finite, an expiry is a mistake: it would be stored as no expiry at all.
    "expires_in_days": not_a_number()
    | st.floats(max_value=0, allow_infinity=False)
    | st.floats(min_value=36_501, allow_infinity=False)
    | one_of_values("inf", "-inf", "nan", "Infinity"),
}
KEY = BodySchema(
    valid=st.fixed_dictionaries({"name": _KEY_NAME}, optional=_KEY_LIMITS),
    wrong={"name": not_a_string(nullable=False) | one_of_values("", "x" * 65), **_KEY_WRONG},
    required=("name",),
)
KEY_CHANGES = BodySchema(
    valid=st.fixed_dictionaries({}, optional=_KEY_LIMITS),
    wrong={"name": not_a_string() | one_of_values("", "x" * 65), **_KEY_WRONG},
)


def deployment_schema(model_path: str, *, systemd_options: bool = False, kind: bool = True) -> BodySchema:
    """/fleet/plan's body (and deploy's, and the systemd unit's): a deployment of `model_path` on the CPU.
    `kind`: whether the body's kind counts (the systemd unit route sets its own)."""
    valid = st.fixed_dictionaries(
        {"model_path": st.just(model_path), "gpus": st.sampled_from(("none", "cpu", None))},
        optional={
            "name": st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z"),
            "kind": st.just("container"),
            "image": st.text(min_size=1, max_size=20),
            "ctx_size": st.integers(128, 1_048_576),
            "parallel": st.integers(1, 256),
            "port": st.integers(1024, 65535),
            "host": st.just("127.0.0.1"),
            "extra_args": st.lists(st.text(max_size=10), max_size=3),
        },
    )
    truthy = JSON_VALUES.filter(bool)
    wrong: dict[str, st.SearchStrategy[Any]] = {
        # A falsy name or port means "pick one for me", so only truthy wrong values are mistakes.
        "name": not_a_string().filter(bool) | one_of_values("Upper", "has space", "-x", "x" * 64, "a/b"),
        "kind": not_a_string().filter(lambda value: value is not None)
        | st.text(max_size=10).filter(lambda text: text not in ("container", "systemd")),
        "model_path": truthy.filter(lambda value: not isinstance(value, str))
        | one_of_values("relative.gguf", "/nonexistent/model.gguf", "/", "/dev/null", "~nosuchuser/m.gguf", "/a\x00b"),
        "image": not_a_string().filter(lambda value: value is not None),
        "gpus": one_of_values("abc", "0,x", 1.5, {"a": 1}, [1.5], ["a"], True),
        "ctx_size": not_an_integer(128, 1_048_576).filter(lambda value: value is not None),
        "parallel": not_an_integer(1, 256).filter(lambda value: value is not None),
        "port": not_an_integer(1, 65535).filter(bool),
        "host": not_a_string().filter(lambda value: value is not None),
        "extra_args": (st.booleans() | st.integers() | st.text(max_size=8) | values_of_kind("object")).filter(
            lambda value: value is not None
        )
        | st.lists(not_a_string(nullable=False), min_size=1, max_size=2),
    }
    if systemd_options:
        wrong["systemd"] = systemd_wrong()
    if not kind:
        del wrong["kind"]
    return BodySchema(valid=valid, wrong=wrong, required=("model_path",))


def systemd_wrong() -> st.SearchStrategy[Any]:
    """Options a systemd deployment or unit must refuse. Never falsy, and never a dict without dry_run: true, so
    nothing generated could install a unit for real if the check were missing."""
    options = st.fixed_dictionaries(
        {"dry_run": st.just(True)},
        optional={"binary": not_a_string(), "user": not_a_boolean().filter(bool), "log_dir": not_a_string()},
    ).filter(lambda options: len(options) > 1)
    unknown = unknown_fields().map(lambda extra: {"dry_run": True, **extra})
    not_options = (st.integers() | st.text(max_size=8) | values_of_kind("array")).filter(bool)
    return options | unknown | not_options


# -- requests ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Protected:
    """Names and ids that generated paths must not touch: the fuzz gateway's own providers and keys."""

    providers: frozenset[str]
    keys: frozenset[str]


def path_names(protected: frozenset[str]) -> st.SearchStrategy[str]:
    """A path segment: names of many shapes, percent-encoded, never one of `protected`."""
    names = st.text(max_size=20) | _PROVIDER_NAME | one_of_values("..", ".", "%ff", "a%2Fb", "a b", "ü")
    return names.filter(lambda name: name not in protected and name.strip())


def segment(name: str) -> str:
    return name if name in ("%ff", "a%2Fb") else quote(name, safe="")


_QUERY_VALUES = st.text(max_size=12) | one_of_values("", "-1", "0", "1e400", "nan", "inf", "%ff", "x" * 100)


@st.composite
def admin_requests(
    draw: st.DrawFn, *, model_path: str, scratch_dir: Path, protected: Protected, patched: tuple[str, str]
) -> FuzzRequest:
    """A request to one of the admin routes that read input. `patched` names the provider and the key id that
    PATCH may change; `scratch_dir` is a directory the catalog may scan."""
    patched_provider, patched_key = patched
    provider_name = st.sampled_from((patched_provider,)) | path_names(protected.providers)
    key_id = path_names(protected.keys)
    plan = deployment_schema(model_path)
    route = draw(st.integers(0, 15))
    if route == 0:
        return _post("/providers", draw(admin_body_bytes(PROVIDER)))
    if route == 1:
        return _post("/providers/test", draw(admin_body_bytes(PROVIDER)))
    if route == 2:
        body = draw(admin_body_bytes(PROVIDER_CHANGES))
        return FuzzRequest("PATCH", f"/providers/{segment(patched_provider)}", JSON_HEADERS, body)
    if route == 3:
        method, suffix = draw(st.sampled_from((("GET", ""), ("DELETE", ""), ("POST", "/test"))))
        name = draw(path_names(protected.providers | {patched_provider}))
        return FuzzRequest(method, f"/providers/{segment(name)}{suffix}", JSON_HEADERS, b"")
    if route == 4:
        return _post("/keys", draw(admin_body_bytes(KEY)))
    if route == 5:
        return FuzzRequest("PATCH", f"/keys/{segment(patched_key)}", JSON_HEADERS, draw(admin_body_bytes(KEY_CHANGES)))
    if route == 6:
        method, suffix = draw(st.sampled_from((("DELETE", ""), ("POST", "/revoke"), ("PATCH", ""))))
        body = draw(admin_body_bytes(KEY_CHANGES)) if method == "PATCH" else b""
        return FuzzRequest(method, f"/keys/{segment(draw(key_id))}{suffix}", JSON_HEADERS, body)
    if route == 7:
        return FuzzRequest("DELETE", f"/requests/{segment(draw(path_names(frozenset())))}", JSON_HEADERS, b"")
    if route == 8:
        kind: Route = draw(st.sampled_from(("chat", "completions")))
        return _post(ROUTE_PATHS[kind], draw(body_bytes(kind)))
    if route == 9:
        return _post("/fleet/plan", draw(admin_body_bytes(plan)))
    if route == 10:
        return _post("/fleet/deployments", draw(deploy_bodies(model_path)))
    if route == 11:
        return draw(deployment_actions(provider_name))
    if route == 12:
        return draw(compose_requests())
    if route == 13:
        unit = deployment_schema(model_path, systemd_options=True, kind=False)
        return _post("/fleet/systemd/unit", draw(admin_body_bytes(unit)))
    if route == 14:
        return draw(systemd_actions())
    return draw(catalog_requests(scratch_dir))


def _post(path: str, body: bytes) -> FuzzRequest:
    return FuzzRequest("POST", path, JSON_HEADERS, body)


@st.composite
def deploy_bodies(draw: st.DrawFn, model_path: str) -> bytes:
    """POST /fleet/deployments: a deployment body plus health_timeout_s and systemd options. A systemd deployment
    is only ever a dry run (see `systemd_wrong`)."""
    schema = deployment_schema(model_path, systemd_options=True)
    wrong = {
        **schema.wrong,
        "health_timeout_s": not_a_number()
        | st.floats(max_value=0, allow_infinity=False)
        | one_of_values("inf", "nan", "-1"),
    }
    systemd = st.fixed_dictionaries({"kind": st.just("systemd"), "systemd": st.just({"dry_run": True})})
    valid = st.tuples(schema.valid, st.none() | systemd).map(lambda pair: {**pair[0], **(pair[1] or {})})
    return draw(admin_body_bytes(BodySchema(valid=valid, wrong=wrong, required=schema.required)))


@st.composite
def deployment_actions(draw: st.DrawFn, names: st.SearchStrategy[str]) -> FuzzRequest:
    """Remove, logs and start/stop/restart of deployments: with no Docker engine in-process these get a 503."""
    name = segment(draw(names))
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return FuzzRequest("DELETE", f"/fleet/deployments/{name}", JSON_HEADERS, b"")
    if choice == 1:
        query = draw(st.sampled_from(("tail", "follow", "both")))
        tail, follow = draw(_QUERY_VALUES), draw(_QUERY_VALUES)
        parts = {"tail": f"tail={quote(tail)}", "follow": f"follow={quote(follow)}"}
        text = "&".join(parts.values()) if query == "both" else parts[query]
        return FuzzRequest("GET", f"/fleet/deployments/{name}/logs?{text}", JSON_HEADERS, b"")
    action = draw(st.sampled_from(("start", "stop", "restart")) | st.text(max_size=8).filter(str.strip))
    return FuzzRequest("POST", f"/fleet/deployments/{name}/{segment(action)}", JSON_HEADERS, b"")


_COMPOSE_TEXTS = one_of_values(
    "",
    "services:",
    "services: []",
    "services: {a: 1}",
    "services:\n  m:\n    image: x\n",
    "services:\n  m:\n    image: ghcr.io/ggml-org/llama.cpp:server\n    command: [-m, /models/m.gguf]\n",
    "services:\n  m: &a\n    image: x\n  n: *a\n",
    ": : :",
    "\t- [",
    "!!python/object/apply:os.system [true]",
    "a: " + "[" * 200,
)


@st.composite
def compose_requests(draw: st.DrawFn) -> FuzzRequest:
    if draw(st.booleans()):
        return FuzzRequest("GET", "/fleet/compose", JSON_HEADERS, b"")
    text = draw(_COMPOSE_TEXTS | st.text(max_size=60))
    query = draw(st.none() | _QUERY_VALUES)
    path = "/fleet/compose" + ("" if query is None else f"?health_timeout_s={quote(query)}")
    return FuzzRequest("POST", path, (("content-type", "application/yaml"),), text.encode("utf-8", "replace"))


@st.composite
def systemd_actions(draw: st.DrawFn) -> FuzzRequest:
    """status with any name (it only reads); start/stop/restart only with names systemd actions refuse."""
    action = draw(st.sampled_from(("status", "start", "stop", "restart")) | st.text(max_size=8).filter(str.strip))
    names = path_names(frozenset())
    if action in ("start", "stop", "restart"):
        names = names.filter(lambda name: not UNIT_NAME.fullmatch(name))
    query = draw(st.sampled_from(("", "?user=1", "?user=true", "?user=%ff")))
    return FuzzRequest("POST", f"/fleet/systemd/{segment(draw(names))}/{segment(action)}{query}", JSON_HEADERS, b"")


@st.composite
def catalog_requests(draw: st.DrawFn, scratch_dir: Path) -> FuzzRequest:
    dirs = st.lists(
        st.sampled_from((str(scratch_dir), str(scratch_dir / "missing"), "", "relative/dir", "/nonexistent", "\x00"))
        | st.text(max_size=8).map(lambda suffix: str(scratch_dir / suffix)),
        max_size=3,
    )
    query = "&".join(f"dir={quote(directory)}" for directory in draw(dirs))
    return FuzzRequest("GET", "/catalog" + (f"?{query}" if query else ""), JSON_HEADERS, b"")


def cannot_install(request: FuzzRequest) -> bool:
    """Checked again before a request is sent: a deploy that validated could not install a systemd unit (a
    mutation may have dropped the dry run), nor start, stop or restart one."""
    if request.path.startswith("/fleet/systemd/") and not request.path.startswith("/fleet/systemd/unit"):
        action = unquote(request.path.split("?")[0].rsplit("/", 1)[-1])
        name = unquote(request.path.split("/")[3])
        return action not in ("start", "stop", "restart") or not UNIT_NAME.fullmatch(name)
    if request.path != "/fleet/deployments":
        return True
    try:
        document = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(document, dict) or document.get("kind") != "systemd":
        return True
    options = document.get("systemd")
    if isinstance(options, dict):
        return options.get("dry_run") is True
    return bool(options)  # not a dict: refused (or, before the fix, failed) before anything ran
