"""Hypothesis strategies for the admin API: every route that reads a body, a path or a query, given valid, wrong
and broken input (the bodies come from admin_bodies.py).

Nothing generated here can act on the machine: a systemd deployment is always a dry run (or fails validation before
it could install), systemd start/stop/restart only get names that fail validation, and the catalog only scans
temporary or missing directories. `cannot_install` checks the first two again on every request before it is sent.
In-process the gateway reaches no Docker engine (tests/testbed/in_process.py), so a container deployment that
validates gets a 503 and starts nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote, unquote

import orjson
from hypothesis import strategies as st

from tests.fuzz.admin_bodies import (
    JSON_HEADERS,
    KEY,
    KEY_CHANGES,
    PROVIDER,
    PROVIDER_CHANGES,
    PROVIDER_NAME,
    admin_body_bytes,
    deploy_bodies,
    deployment_schema,
    one_of_values,
)
from tests.fuzz.openai_bodies import ROUTE_PATHS, Route, body_bytes
from tests.fuzz.strategies import FuzzRequest

UNIT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # what systemd actions accept (fleet/systemd.py)


@dataclass(frozen=True)
class Protected:
    """Names and ids that generated paths must not touch: the fuzz gateway's own providers and keys."""

    providers: frozenset[str]
    keys: frozenset[str]


def path_names(protected: frozenset[str]) -> st.SearchStrategy[str]:
    """A path segment: names of many shapes, percent-encoded, never one of `protected`."""
    names = st.text(max_size=20) | PROVIDER_NAME | one_of_values("..", ".", "%ff", "a%2Fb", "a b", "ü")
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
    route = draw(st.integers(0, 16))
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
    if route == 15:
        return draw(archive_requests())
    return draw(catalog_requests(scratch_dir))


def _post(path: str, body: bytes) -> FuzzRequest:
    return FuzzRequest("POST", path, JSON_HEADERS, body)


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


_TIMES = one_of_values("7d", "36h", "0", "now", "2026-11-03", "2026-11-03T14:00Z", "-1", "1e400", "nan", "9" * 30)
_MONTHS = one_of_values("2026-11", "2026-13", "1999-01", "0000-00", "2026-1", "") | st.text(max_size=8)
_FILTERS = ("key", "model", "provider", "status", "since", "until", "text", "limit", "cursor", "by", "bucket")


@st.composite
def archive_requests(draw: st.DrawFn) -> FuzzRequest:
    """The history routes: searches with any filters (FTS5 syntax included), one request by id, exports, prunes
    (of months that cannot exist here, or of nothing) and usage queries."""
    choice = draw(st.integers(0, 4))
    if choice in (0, 4):
        names = _FILTERS[:9] if choice == 0 else ("by", "since", "until", "bucket")
        values = _TIMES | _QUERY_VALUES | one_of_values("4xx", "ok", "error", "key", "hour", "day", '"a', "a OR", "*")
        pairs = draw(st.lists(st.tuples(st.sampled_from(names) | st.text(max_size=6), values), max_size=4))
        query = "&".join(f"{quote(name)}={quote(value)}" for name, value in pairs)
        return FuzzRequest(
            "GET", ("/history" if choice == 0 else "/usage") + (f"?{query}" if query else ""), JSON_HEADERS, b""
        )
    if choice == 1:
        return FuzzRequest("GET", f"/history/{segment(draw(path_names(frozenset())))}", JSON_HEADERS, b"")
    if choice == 2:
        month, fmt = draw(_MONTHS), draw(one_of_values("jsonl", "csv", "xml", "") | st.text(max_size=5))
        return FuzzRequest("GET", f"/history/export?month={quote(month)}&format={quote(fmt)}", JSON_HEADERS, b"")
    before = draw(one_of_values("1970-01", "1999-12", "2999-01") | _MONTHS)  # never a month the gateway holds
    body = draw(
        one_of_values(b"", b"{}", b"[]", b'{"before": 1}', b'{"x": "1"}') | st.just(orjson.dumps({"before": before}))
    )
    return _post("/history/prune", body)


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
