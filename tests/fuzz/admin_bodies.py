"""Admin API bodies for hypothesis: a `BodySchema` per body (providers, keys, deployments), with its valid bodies
and, per field, values that field must refuse with a 400 naming it.

The admin models are pydantic's, in lax mode (the console's forms validate typed text with them), so "refuse"
means what lax mode refuses: "5" is a fine integer and "yes" a fine boolean there, and neither is generated as a
mistake. Base URLs point at 127.0.0.1 (or fail validation), and a systemd deployment is always a dry run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hypothesis import strategies as st

from tests.fuzz.json_values import ANY_VALUE, DROP, JSON_VALUES, encode, mutate, values_of_kind
from tests.fuzz.openai_bodies import ODD_DOCUMENTS, unknown_fields

JSON_HEADERS: Final = (("content-type", "application/json"),)
CLOSED_PORT_URL: Final = "http://127.0.0.1:9"  # the discard port: nothing listens, a probe fails at once
PROVIDER_TYPES: Final = ("llama-server", "ollama", "openai", "anthropic")

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


PROVIDER_NAME = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z")
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
    "models": st.dictionaries(PROVIDER_NAME, PROVIDER_NAME, max_size=2),
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
    | st.dictionaries(PROVIDER_NAME, not_a_string(nullable=False), min_size=1, max_size=2),
    "priority": not_an_integer(-1000, 1000, nullable=False),
    "weight": not_an_integer(1, 1000, nullable=False),
    "max_concurrency": not_an_integer(1, 100_000),
    "enabled": not_a_boolean(),
}
PROVIDER = BodySchema(
    valid=st.fixed_dictionaries(
        {"name": PROVIDER_NAME, "type": st.sampled_from(PROVIDER_TYPES), "base_url": _VALID_URLS},
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
    "models": st.none() | st.lists(PROVIDER_NAME, max_size=3),
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
