"""The API keys as the admin sees them: created, changed, revoked and deleted here, written through to config.json.

The request path only reads the KeyRing (`ring`); it records last-used times in memory, and this store saves
them every LAST_USED_FLUSH_S and at shutdown, so no request ever waits on the disk. Every KEY_USE_PUBLISH_S it
publishes a "key" event for each key whose use moved (its last use, or its requests and tokens in the last
minute), so the console's req/m, tok/m and last used follow the traffic without polling.

Webhook secrets: a key's current one, and after a rotation the previous one until its window ends, are what
`webhook_secrets` gives the callback service to sign with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import replace

from gateway_core.clock import Clock
from gateway_core.contracts.admin_requests import KeySpec, KeyUpdate
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.jobs import WebhookSecretView
from gateway_core.contracts.views import KeyView
from gateway_core.events import EventBus
from gateway_core.gateway.keys import ApiKey, KeyRing, new_key, new_webhook_secret
from gateway_core.gateway.limits import RateLimiter
from gateway_core.store.config_store import ConfigStore

LAST_USED_FLUSH_S = 30.0
KEY_USE_PUBLISH_S = 1.0
DAY_S = 86400.0
WEBHOOK_ROTATION_WINDOW_S = DAY_S  # how long the previous webhook secret keeps signing after a rotation


class KeyStore:
    """Every key, in the ring the request path authenticates against and in config.json, kept in step."""

    def __init__(
        self,
        store: ConfigStore,
        limiter: RateLimiter,
        events: EventBus,
        clock: Clock,
        *,
        webhook_rotation_window_s: float = WEBHOOK_ROTATION_WINDOW_S,
    ) -> None:
        self._store = store
        self.webhook_rotation_window_s = webhook_rotation_window_s
        self._limiter = limiter
        self._events = events
        self._clock = clock
        stored = store.all("keys")
        self.ring = KeyRing([ApiKey.from_stored(record) for record in stored], clock=clock)
        self.ring.last_used.update({r["id"]: r["last_used_at"] for r in stored if r.get("last_used_at")})
        self._flushed_last_used: dict[str, float] = dict(self.ring.last_used)
        self._flusher: asyncio.Task[None] | None = None
        self._use_publisher: asyncio.Task[None] | None = None
        self._published_use: dict[str, tuple[float | None, int, int, int]] = {}  # key id -> its use as last published

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self.ring)

    def __len__(self) -> int:
        return len(self.ring)

    # -- reading --------------------------------------------------------------------------------------

    def find(self, id_or_name: str) -> ApiKey | None:
        return self.ring.find(id_or_name)

    def require(self, id_or_name: str) -> ApiKey:
        key = self.ring.find(id_or_name)
        if key is None:
            raise GatewayError(404, f"no key with id or name '{id_or_name}'", code="key_not_found")
        return key

    def view(self, key: ApiKey) -> KeyView:
        """The key as the admin API and the event stream show it: no secret, with its last use and usage."""
        return {
            **key.public_view(now=self._clock.time(), last_used_at=self.ring.last_used.get(key.id)),
            "usage": self._limiter.usage(key.id),
        }

    def views(self) -> list[KeyView]:
        return [self.view(key) for key in self.ring]

    def webhook_secrets(self, key_id: str) -> list[str]:
        """What the key's callbacks are signed with now; empty for an unknown key or one without a secret."""
        key = self.ring.find_by_id(key_id)
        return key.webhook_secrets(self._clock.time()) if key is not None else []

    # -- changing -------------------------------------------------------------------------------------

    def create(self, spec: KeySpec) -> tuple[ApiKey, str]:
        """A new key and its plaintext, which is returned this once and never stored."""
        self._refuse_taken_name(spec.name)
        now = self._clock.time()
        key, plaintext = new_key(
            spec.name,
            created_at=now,
            models=tuple(spec.models) if spec.models is not None else None,
            rpm=spec.rpm,
            tpm=spec.tpm,
            max_concurrency=spec.max_concurrency,
            expires_at=self._expires_at(spec.expires_in_days, now),
            capture=spec.capture,
        )
        self._save(key)
        return key, plaintext

    def update(self, key: ApiKey, update: KeyUpdate) -> ApiKey:
        changes = update.model_dump(exclude_unset=True)
        if changes.get("name") not in (None, key.name):
            self._refuse_taken_name(changes["name"])
        if changes.get("models") is not None:
            changes["models"] = tuple(changes["models"])
        if "expires_in_days" in changes:
            changes["expires_at"] = self._expires_at(changes.pop("expires_in_days"), self._clock.time())
        updated = replace(key, **changes)
        self._save(updated)
        return updated

    def rotate_webhook_secret(self, key: ApiKey) -> WebhookSecretView:
        """A new webhook secret, returned this once; the current one keeps signing through the rotation window.

        Rotating again inside a window drops the oldest secret: at most two ever sign.
        """
        now = self._clock.time()
        until = now + self.webhook_rotation_window_s if key.webhook_secret is not None else None
        secret = new_webhook_secret()
        self._save(
            replace(
                key,
                webhook_secret=secret,
                previous_webhook_secret=key.webhook_secret,
                previous_webhook_secret_until=until,
            )
        )
        return {"key_id": key.id, "webhook_secret": secret, "previous_valid_until": until}

    def revoke(self, key: ApiKey) -> ApiKey:
        """Refused from its next request on; kept, so the admin still sees who it was."""
        revoked = replace(key, revoked=True)
        self._save(revoked)
        return revoked

    def delete(self, key: ApiKey) -> None:
        self._store.remove("keys", "id", key.id)
        self.ring.remove(key.id)
        self._limiter.forget(key.id)
        self._events.publish("key.removed", {"id": key.id})

    def _refuse_taken_name(self, name: str) -> None:
        if self.ring.find(name) is not None:
            raise GatewayError(409, f"a key named '{name}' already exists", param="name", code="duplicate_name")

    @staticmethod
    def _expires_at(days: float | None, now: float) -> float | None:
        return now + days * DAY_S if days else None

    def _save(self, key: ApiKey) -> None:
        self._store.put("keys", "id", {**key.stored(), "last_used_at": self.ring.last_used.get(key.id)})
        self.ring.put(key)
        self._events.publish("key", self.view(key))

    # -- last-used times ------------------------------------------------------------------------------

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="flush-last-used")
        self._use_publisher = asyncio.create_task(self._publish_use_loop(), name="publish-key-use")

    async def close(self) -> None:
        """Stop the flush loop and save what it has not saved yet."""
        for task in (self._flusher, self._use_publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._flusher = self._use_publisher = None
        self.flush_last_used()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(LAST_USED_FLUSH_S)
            self.flush_last_used()

    async def _publish_use_loop(self) -> None:
        while True:
            await asyncio.sleep(KEY_USE_PUBLISH_S)
            self.publish_use()

    def publish_use(self) -> None:
        """A "key" event for each key whose use moved since the last one: used again, or its last minute's
        requests and tokens changed (they also fall back to 0 a minute after the traffic stops)."""
        for key in self.ring:
            usage = self._limiter.usage(key.id)
            use = (
                self.ring.last_used.get(key.id),
                usage["in_flight"],
                usage["requests_last_minute"],
                usage["tokens_last_minute"],
            )
            if use != self._published_use.get(key.id, (self.ring.last_used.get(key.id), 0, 0, 0)):
                self._published_use[key.id] = use
                self._events.publish("key", self.view(key))

    def flush_last_used(self) -> None:
        """Save the last-used times that changed since the last flush (one write per key used)."""
        for key_id, used_at in list(self.ring.last_used.items()):
            key = self.ring.find(key_id)
            if key is not None and self._flushed_last_used.get(key_id) != used_at:
                self._store.put("keys", "id", {**key.stored(), "last_used_at": used_at})
                self._flushed_last_used[key_id] = used_at
