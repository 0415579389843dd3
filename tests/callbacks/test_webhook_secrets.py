"""Each key's webhook secret: made with the key and shown once, kept whole in config.json to sign, never in a
view, an event or a log; rotation hands receivers a window in which both secrets sign."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway_core.callbacks.signing import UnsignableError, signed_headers
from gateway_core.contracts.admin_requests import KeySpec
from gateway_core.events import EventBus
from gateway_core.gateway.key_store import KeyStore
from gateway_core.gateway.keys import ApiKey
from gateway_core.gateway.limits import RateLimiter
from gateway_core.store.config_store import ConfigStore
from tests.fakes.clock import FakeClock
from tests.testbed.in_process import InProcessGateway

HOUR_S = 3600.0
BODY = b'{"type":"job.succeeded","timestamp":"2026-12-01T15:00:00.000Z","data":{"id":"job_1"}}'


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(tmp_path: Path) -> Iterator[ConfigStore]:
    store = ConfigStore(tmp_path / "config.json")
    yield store
    store.close()


def key_store(config: ConfigStore, clock: FakeClock, events: EventBus | None = None, **options: float) -> KeyStore:
    return KeyStore(config, RateLimiter(clock=clock.monotonic), events or EventBus(), clock, **options)


def verifies(secret: str, headers: dict[str, str], body: bytes = BODY) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def test_a_new_key_has_a_webhook_secret_in_the_standard_webhooks_format(config, clock):
    key, _ = key_store(config, clock).create(KeySpec(name="app"))

    assert key.webhook_secret is not None
    assert key.webhook_secret.startswith("whsec_")
    assert len(base64.b64decode(key.webhook_secret.removeprefix("whsec_"), validate=True)) == 32


def test_every_key_gets_a_secret_of_its_own(config, clock):
    keys = key_store(config, clock)

    secrets = {keys.create(KeySpec(name=f"app{n}"))[0].webhook_secret for n in range(5)}

    assert len(secrets) == 5


def test_the_secret_is_kept_in_config_json_so_it_can_sign_after_a_restart(config, clock, tmp_path):
    key, _ = key_store(config, clock).create(KeySpec(name="app"))

    reopened = key_store(config, clock)

    assert reopened.webhook_secrets(key.id) == [key.webhook_secret]
    assert key.webhook_secret in (tmp_path / "config.json").read_text()


def test_the_secret_is_in_no_view_and_no_repr_of_the_key(config, clock):
    keys = key_store(config, clock)
    key, _ = keys.create(KeySpec(name="app"))
    assert key.webhook_secret is not None

    shown = [json.dumps(keys.view(key)), json.dumps(keys.views()), repr(key), str(key)]

    assert not [text for text in shown if key.webhook_secret in text]


def test_a_key_made_before_webhook_secrets_has_none_until_it_is_rotated(config, clock):
    keys = key_store(config, clock)
    key, _ = keys.create(KeySpec(name="old"))
    stored = {**key.stored()}
    for name in ("webhook_secret", "previous_webhook_secret", "previous_webhook_secret_until"):
        stored.pop(name)
    config.remove("keys", "id", key.id)
    config.put("keys", "id", stored)  # as an older corral-core wrote it
    keys = key_store(config, clock)
    assert keys.webhook_secrets(key.id) == []

    rotated = keys.rotate_webhook_secret(keys.require("old"))

    assert rotated["previous_valid_until"] is None
    assert keys.webhook_secrets(key.id) == [rotated["webhook_secret"]]


def test_after_a_rotation_both_secrets_sign_until_the_window_ends(config, clock):
    keys = key_store(config, clock, webhook_rotation_window_s=2 * HOUR_S)
    key, _ = keys.create(KeySpec(name="app"))
    old = key.webhook_secret
    assert old is not None

    rotated = keys.rotate_webhook_secret(key)
    new = rotated["webhook_secret"]

    assert rotated["previous_valid_until"] == clock.time() + 2 * HOUR_S
    assert keys.webhook_secrets(key.id) == [new, old]
    clock.advance(2 * HOUR_S - 1)
    assert keys.webhook_secrets(key.id) == [new, old]
    clock.advance(1)
    assert keys.webhook_secrets(key.id) == [new]


def test_during_the_window_one_signature_header_verifies_with_either_secret(config, clock):
    keys = key_store(config, clock)
    key, _ = keys.create(KeySpec(name="app"))
    old = key.webhook_secret
    assert old is not None
    new = keys.rotate_webhook_secret(key)["webhook_secret"]

    headers = signed_headers("msg_1", BODY, keys.webhook_secrets(key.id), time.time())

    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verifies(old, headers)
    assert verifies(new, headers)


def test_after_the_window_the_old_secret_no_longer_verifies(config, clock):
    keys = key_store(config, clock)
    key, _ = keys.create(KeySpec(name="app"))
    old = key.webhook_secret
    assert old is not None
    new = keys.rotate_webhook_secret(key)["webhook_secret"]
    clock.advance(keys.webhook_rotation_window_s)

    headers = signed_headers("msg_1", BODY, keys.webhook_secrets(key.id), time.time())

    assert verifies(new, headers)
    assert not verifies(old, headers)


def test_rotating_again_inside_the_window_drops_the_oldest_secret(config, clock):
    keys = key_store(config, clock)
    key, _ = keys.create(KeySpec(name="app"))
    first = key.webhook_secret
    second = keys.rotate_webhook_secret(key)["webhook_secret"]

    third = keys.rotate_webhook_secret(keys.require("app"))["webhook_secret"]

    assert keys.webhook_secrets(key.id) == [third, second]
    assert first not in keys.webhook_secrets(key.id)


def test_a_rotation_survives_a_restart_with_its_window(config, clock):
    keys = key_store(config, clock)
    key, _ = keys.create(KeySpec(name="app"))
    new = keys.rotate_webhook_secret(key)["webhook_secret"]

    assert key_store(config, clock).webhook_secrets(key.id) == [new, key.webhook_secret]


def test_a_signature_covers_the_exact_body_bytes(config, clock):
    key, _ = key_store(config, clock).create(KeySpec(name="app"))
    assert key.webhook_secret is not None
    headers = signed_headers("msg_1", BODY, [key.webhook_secret], time.time())

    reencoded = orjson.dumps(orjson.loads(BODY), option=orjson.OPT_INDENT_2)

    assert verifies(key.webhook_secret, headers, BODY)
    assert not verifies(key.webhook_secret, headers, reencoded)
    assert not verifies(key.webhook_secret, {**headers, "webhook-id": "msg_2"}, BODY)


def test_nothing_is_signed_without_a_secret():
    with pytest.raises(UnsignableError):
        signed_headers("msg_1", BODY, [], time.time())


def test_an_unknown_key_has_no_secrets(config, clock):
    assert key_store(config, clock).webhook_secrets("nope") == []


def test_stored_keys_round_trip_with_their_secrets(config, clock):
    key, _ = key_store(config, clock).create(KeySpec(name="app"))

    assert ApiKey.from_stored(key.stored()) == key


# -- over the admin API ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_post_keys_answers_the_webhook_secret_once_and_no_other_route_or_event_shows_it(tmp_path):
    async with InProcessGateway.running(tmp_path / "data") as gateway:
        events = gateway.state.events.subscribe()
        created = (await gateway.admin.post("/keys", json={"name": "app"})).json()
        secret = created["webhook_secret"]
        rotated = await gateway.admin.post(f"/keys/{created['id']}/webhook-secret")
        listed = await gateway.admin.get("/keys")
        status = await gateway.admin.get("/status")

        assert secret.startswith("whsec_")
        assert rotated.status_code == 200
        new = rotated.json()["webhook_secret"]
        assert rotated.json()["key_id"] == created["id"]
        assert rotated.json()["previous_valid_until"] > time.time()
        for answer in (listed, status):
            assert secret not in answer.text
            assert new not in answer.text
        published = []
        while not events.empty():
            event = events.get_nowait()
            assert event is not None
            published.append(json.dumps(event.data))
        assert published
        assert not [text for text in published if secret in text or new in text]


@pytest.mark.asyncio
async def test_rotating_an_unknown_key_is_a_404(tmp_path):
    async with InProcessGateway.running(tmp_path / "data") as gateway:
        answer = await gateway.admin.post("/keys/nope/webhook-secret")

        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "key_not_found"


@pytest.mark.asyncio
async def test_a_key_can_be_rotated_by_name(tmp_path):
    async with InProcessGateway.running(tmp_path / "data") as gateway:
        created = (await gateway.admin.post("/keys", json={"name": "app"})).json()

        rotated = (await gateway.admin.post("/keys/app/webhook-secret")).json()

        assert rotated["key_id"] == created["id"]
        assert gateway.state.keys.webhook_secrets(created["id"]) == [
            rotated["webhook_secret"],
            created["webhook_secret"],
        ]
