"""The key store's rules, without a daemon: names, expiry, revocation, deletion and the last-used flush."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_core.contracts.admin_requests import KeySpec, KeyUpdate
from gateway_core.contracts.errors import GatewayError
from gateway_core.events import Event, EventBus
from gateway_core.gateway.key_store import KeyStore
from gateway_core.gateway.keys import ApiKey
from gateway_core.gateway.limits import KeyLimits, RateLimiter
from gateway_core.store.config_store import ConfigStore
from tests.fakes.clock import FakeClock

DAY_S = 86400.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(tmp_path: Path) -> Iterator[ConfigStore]:
    store = ConfigStore(tmp_path / "config.json")
    yield store
    store.close()


def key_store(config: ConfigStore, clock: FakeClock, events: EventBus | None = None) -> KeyStore:
    return KeyStore(config, RateLimiter(clock=clock.monotonic), events or EventBus(), clock)


def bearer(plaintext: str) -> str:
    return f"Bearer {plaintext}"


def drain(queue: asyncio.Queue[Event | None]) -> list[Event]:
    events = []
    while not queue.empty():
        event = queue.get_nowait()
        assert event is not None
        events.append(event)
    return events


def test_a_new_key_expires_the_given_days_after_it_was_created(config, clock):
    keys = key_store(config, clock)

    key, _ = keys.create(KeySpec(name="ci", expires_in_days=2))

    assert key.created_at == clock.time()
    assert key.expires_at == clock.time() + 2 * DAY_S


def test_a_key_created_without_expiry_never_expires(config, clock):
    keys = key_store(config, clock)

    key, plaintext = keys.create(KeySpec(name="ci"))
    clock.advance(10_000 * DAY_S)

    assert key.expires_at is None
    assert keys.ring.authenticate(bearer(plaintext)) == key


def test_an_expired_key_is_refused_and_shown_expired_once_the_clock_passes_its_expiry(config, clock):
    keys = key_store(config, clock)
    key, plaintext = keys.create(KeySpec(name="ci", expires_in_days=1))
    assert keys.view(key)["expired"] is False

    clock.advance(DAY_S)

    assert keys.view(key)["expired"] is True
    with pytest.raises(GatewayError) as refused:
        keys.ring.authenticate(bearer(plaintext))
    assert (refused.value.status, refused.value.code) == (401, "expired_api_key")


def test_creating_a_key_with_a_name_in_use_is_refused_with_409(config, clock):
    keys = key_store(config, clock)
    keys.create(KeySpec(name="webapp"))

    with pytest.raises(GatewayError) as refused:
        keys.create(KeySpec(name="webapp"))

    assert (refused.value.status, refused.value.code, refused.value.param) == (409, "duplicate_name", "name")
    assert "a key named 'webapp' already exists" in refused.value.message
    assert len(keys) == 1


def test_renaming_a_key_to_another_keys_name_is_refused_but_keeping_its_own_name_is_not(config, clock):
    keys = key_store(config, clock)
    webapp, _ = keys.create(KeySpec(name="webapp"))
    keys.create(KeySpec(name="batch"))

    with pytest.raises(GatewayError) as refused:
        keys.update(webapp, KeyUpdate(name="batch"))
    same = keys.update(webapp, KeyUpdate(name="webapp", rpm=10))

    assert refused.value.status == 409
    assert (same.name, same.rpm) == ("webapp", 10)


def test_an_update_changes_only_the_fields_it_sends(config, clock):
    keys = key_store(config, clock)
    key, _ = keys.create(KeySpec(name="webapp", rpm=5, tpm=1000, models=["a"]))

    updated = keys.update(key, KeyUpdate.model_validate({"models": ["tiny", "qwen"]}))

    assert updated.models == ("tiny", "qwen")
    assert (updated.rpm, updated.tpm, updated.name) == (5, 1000, "webapp")
    assert keys.find("webapp") == updated


def test_expires_in_days_on_update_counts_from_now_and_null_removes_the_expiry(config, clock):
    keys = key_store(config, clock)
    key, _ = keys.create(KeySpec(name="webapp", expires_in_days=1))
    clock.advance(DAY_S / 2)

    extended = keys.update(key, KeyUpdate(expires_in_days=3))
    cleared = keys.update(extended, KeyUpdate.model_validate({"expires_in_days": None}))

    assert extended.expires_at == clock.time() + 3 * DAY_S
    assert cleared.expires_at is None


def test_a_revoked_key_is_refused_on_its_next_request_and_kept_in_the_list(config, clock):
    keys = key_store(config, clock)
    key, plaintext = keys.create(KeySpec(name="webapp"))
    keys.ring.authenticate(bearer(plaintext))

    revoked = keys.revoke(key)

    with pytest.raises(GatewayError) as refused:
        keys.ring.authenticate(bearer(plaintext))
    assert (refused.value.status, refused.value.code) == (401, "revoked_api_key")
    assert [view["revoked"] for view in keys.views()] == [True]
    assert revoked.revoked


def test_a_deleted_key_is_gone_from_the_ring_the_file_and_the_limiter(config, clock):
    events = EventBus()
    queue = events.subscribe()
    limiter = RateLimiter(clock=clock.monotonic)
    keys = KeyStore(config, limiter, events, clock)
    key, plaintext = keys.create(KeySpec(name="webapp", rpm=1))
    limiter.acquire(key.id, key.name, KeyLimits(rpm=1)).release()

    keys.delete(key)

    assert keys.find(key.id) is None
    assert config.all("keys") == []
    assert limiter.usage(key.id)["requests_last_minute"] == 0
    with pytest.raises(GatewayError):
        keys.ring.authenticate(bearer(plaintext))
    assert [(event.kind, event.data) for event in drain(queue)][-1] == ("key.removed", {"id": key.id})


def test_every_change_is_published_as_the_keys_view(config, clock):
    events = EventBus()
    queue = events.subscribe()
    keys = key_store(config, clock, events)

    key, _ = keys.create(KeySpec(name="webapp"))
    keys.revoke(key)

    published = drain(queue)
    assert [event.kind for event in published] == ["key", "key"]
    assert published[-1].data == keys.view(keys.require(key.id))
    assert "secret_sha256" not in published[-1].data


def test_require_names_what_it_could_not_find(config, clock):
    keys = key_store(config, clock)

    with pytest.raises(GatewayError) as missing:
        keys.require("nobody")

    assert (missing.value.status, missing.value.code) == (404, "key_not_found")
    assert "nobody" in missing.value.message


def test_keys_and_their_last_use_survive_a_restart_once_flushed(tmp_path, clock):
    path = tmp_path / "config.json"
    first = ConfigStore(path)
    keys = key_store(first, clock)
    key, plaintext = keys.create(KeySpec(name="webapp", models=["tiny"]))
    keys.ring.authenticate(bearer(plaintext))
    used_at = clock.time()
    keys.flush_last_used()
    first.close()

    second = ConfigStore(path)
    reloaded = key_store(second, clock)

    assert reloaded.find("webapp") == key
    assert reloaded.view(key)["last_used_at"] == used_at
    assert reloaded.ring.authenticate(bearer(plaintext)) == key
    second.close()


def test_the_flush_saves_the_last_use_of_keys_used_and_leaves_the_others_unused(config, clock):
    keys = key_store(config, clock)
    _, plaintext = keys.create(KeySpec(name="used"))
    keys.create(KeySpec(name="idle"))
    keys.ring.authenticate(bearer(plaintext))

    keys.flush_last_used()

    saved = {record["name"]: record["last_used_at"] for record in config.all("keys")}
    assert saved == {"used": clock.time(), "idle": None}


@pytest.mark.asyncio
async def test_closing_the_store_saves_last_use_times_not_yet_flushed(tmp_path, clock):
    path = tmp_path / "config.json"
    store = ConfigStore(path)
    keys = key_store(store, clock)
    key, plaintext = keys.create(KeySpec(name="webapp"))
    keys.start()
    keys.ring.authenticate(bearer(plaintext))

    await keys.close()
    store.close()

    reopened = ConfigStore(path)
    assert [record["last_used_at"] for record in reopened.all("keys")] == [clock.time()]
    assert ApiKey.from_stored(reopened.all("keys")[0]) == key
    reopened.close()


def test_a_keys_use_is_published_once_it_moves_and_again_as_its_last_minute_empties(config, clock):
    events = EventBus()
    queue = events.subscribe()
    limiter = RateLimiter(clock=clock.monotonic)
    keys = KeyStore(config, limiter, events, clock)
    key, plaintext = keys.create(KeySpec(name="webapp"))
    keys.publish_use()
    drain(queue)  # the create's event; nothing used yet, so the tick published nothing

    keys.ring.authenticate(bearer(plaintext))  # what the request path does, and its lease
    limiter.acquire(key.id, key.name, KeyLimits()).release()
    keys.publish_use()
    used = drain(queue)
    keys.publish_use()
    unchanged = drain(queue)
    clock.advance(61)
    keys.publish_use()
    emptied = drain(queue)

    assert [(event.kind, event.data["usage"]["requests_last_minute"]) for event in used] == [("key", 1)]
    assert used[0].data["last_used_at"] == clock.time() - 61
    assert unchanged == []
    assert [(event.kind, event.data["usage"]["requests_last_minute"]) for event in emptied] == [("key", 0)]
