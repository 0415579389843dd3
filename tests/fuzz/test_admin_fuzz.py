"""The admin API under generated input, in-process: every route that reads a body, a path or a query.

Properties: never a 5xx, with one exception decided per route: deployments (deploy, remove, logs, start/stop/
restart), compose and systemd actions need the Docker engine or systemd, which the in-process gateway does not
have, so there a 503 `engine_unavailable` is the right answer once the input validated as far as the route can
check it without them (it says which dependency is missing). Every error is in OpenAI's shape, every answer has
an x-request-id, and a 400 caused by one field names it in `param`.

Not fuzzed: GET /events (a stream that reads no input) and the GETs that read none (status, stats, gpus, models,
the lists). Limited, because they act on the machine: systemd start/stop/restart get only names no unit can have,
and the catalog scans only a scratch directory or missing ones (tests/fuzz/admin_strategies.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.fuzz.admin_bodies import (
    JSON_HEADERS,
    KEY,
    KEY_CHANGES,
    PROVIDER,
    PROVIDER_CHANGES,
    AdminMistake,
    BodySchema,
    admin_mistakes,
    deployment_schema,
)
from tests.fuzz.admin_strategies import Protected, admin_requests, cannot_install
from tests.fuzz.checks import Answer, check_answer, fuzz_settings, openai_error
from tests.fuzz.conftest import FuzzTarget
from tests.fuzz.json_values import encode
from tests.fuzz.strategies import FuzzRequest
from tests.fuzz.test_public_fuzz import assert_still_serving, names_field

PATCHED_PROVIDER = "patched"
PATCHED_KEY = "patched-key"
# The routes that need a Docker engine or systemd; without one they answer 503 engine_unavailable.
NEEDS_AN_ENGINE = ("/fleet/deployments", "/fleet/compose", "/fleet/systemd/")


@dataclass
class AdminTarget:
    fuzz: FuzzTarget
    model_path: str
    scratch_dir: Path
    protected: Protected
    patched_key_id: str

    def send(self, request: FuzzRequest) -> Answer:
        assert cannot_install(request), f"refusing to send {request}: it could install or drive a systemd unit"
        mark = self.fuzz.upstream_mark()
        answer = self.fuzz.send_admin(request)
        upstream_failed = answer.status >= 500 and self.fuzz.upstream_failed_since(mark)
        missing_engine = _engine_unavailable(request, answer)
        check_answer(answer, method=request.method, upstream_failed=upstream_failed or missing_engine)
        self._clean_up(request, answer)
        return answer

    def _clean_up(self, request: FuzzRequest, answer: Answer) -> None:
        """Remove what a valid request created, so examples don't pile providers (and their probes) up."""
        if request.method != "POST" or answer.status != 201:
            return
        created = orjson.loads(answer.body)
        if request.path == "/providers":
            path = f"/providers/{quote(created['name'], safe='')}"
        elif request.path == "/keys":
            path = f"/keys/{created['id']}"
        else:
            return
        removed = self.fuzz.send_admin(FuzzRequest("DELETE", path, JSON_HEADERS, b""))
        assert removed.status == 200, removed.describe()


def _engine_unavailable(request: FuzzRequest, answer: Answer) -> bool:
    if answer.status != 503 or not request.path.startswith(NEEDS_AN_ENGINE):
        return False
    return bool(openai_error(answer)["code"] == "engine_unavailable")


@pytest.fixture(scope="module")
def admin_target(fuzz_target: FuzzTarget, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> AdminTarget:
    scratch = tmp_path_factory.mktemp("catalog")
    (scratch / "model.gguf").write_bytes(tiny_model.read_bytes())
    (scratch / "not-a-model.gguf").write_text("not a GGUF file")
    gateway = fuzz_target.gateway
    fuzz_target.run(gateway.add_provider(PATCHED_PROVIDER, "http://127.0.0.1:9"))
    fuzz_target.run(gateway.create_key(PATCHED_KEY))
    keys = {view["id"]: view["name"] for view in gateway.state.keys.views()}
    patched_key_id = next(key_id for key_id, name in keys.items() if name == PATCHED_KEY)
    protected = Protected(
        providers=frozenset(gateway.state.registry.providers), keys=frozenset({*keys, *keys.values()})
    )
    return AdminTarget(fuzz_target, str(tiny_model), scratch, protected, patched_key_id)


def test_generated_admin_requests_get_no_5xx_and_every_error_in_openai_shape(admin_target: AdminTarget) -> None:
    target = admin_target
    requests = admin_requests(
        model_path=target.model_path,
        scratch_dir=target.scratch_dir,
        protected=target.protected,
        patched=(PATCHED_PROVIDER, target.patched_key_id),
    )

    @fuzz_settings(400)
    @given(request=requests)
    def example(request: FuzzRequest) -> None:
        assume(cannot_install(request))
        target.send(request)

    example()
    assert target.fuzz.send_admin(FuzzRequest("GET", "/status", JSON_HEADERS, b"")).status == 200
    assert_still_serving(target.fuzz)


@dataclass(frozen=True, repr=False)
class MistakenRoute:
    method: str
    path: str
    schema: BodySchema

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


def mistaken_routes(target: AdminTarget) -> list[MistakenRoute]:
    deploy = deployment_schema(target.model_path, systemd_options=True)
    return [
        MistakenRoute("POST", "/providers", PROVIDER),
        MistakenRoute("POST", "/providers/test", PROVIDER),
        MistakenRoute("PATCH", f"/providers/{PATCHED_PROVIDER}", PROVIDER_CHANGES),
        MistakenRoute("POST", "/keys", KEY),
        MistakenRoute("PATCH", f"/keys/{target.patched_key_id}", KEY_CHANGES),
        MistakenRoute("POST", "/fleet/plan", deployment_schema(target.model_path)),
        MistakenRoute("POST", "/fleet/deployments", deploy),
        MistakenRoute(
            "POST", "/fleet/systemd/unit", deployment_schema(target.model_path, systemd_options=True, kind=False)
        ),
    ]


def test_a_wrong_admin_field_is_refused_with_400_naming_it(admin_target: AdminTarget) -> None:
    routes = mistaken_routes(admin_target)

    @fuzz_settings(200)
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        route = data.draw(st.sampled_from(routes))
        mistake: AdminMistake = data.draw(admin_mistakes(route.schema))
        answer = admin_target.send(FuzzRequest(route.method, route.path, JSON_HEADERS, encode(mistake.body)))
        assert answer.status == 400, f"{route.path}: {mistake.param} = {mistake.value!r} got {answer.describe()}"
        param = openai_error(answer)["param"]
        assert names_field(param, mistake.param), f"{mistake.param} was at fault, the 400 names {param!r}"

    example()
