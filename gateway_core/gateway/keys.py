"""Corral API keys: `sk-corral-<id>-<secret>`. Only the SHA-256 of the secret is kept.

Lookup is a dict lookup by id plus one hash and a constant-time compare.

Each key also has a webhook secret (`whsec_<base64 of 32 random bytes>`, the Standard Webhooks format) that
signs the ReplyTo callbacks of its jobs. Unlike the key's own secret it is kept whole (config.json, mode 0600),
since signing needs it; it is shown once, when the key is created or the secret rotated, and never in a view.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway_core.clock import SYSTEM_CLOCK, Clock
from gateway_core.contracts.archive import CaptureMode
from gateway_core.contracts.errors import GatewayError
from gateway_core.contracts.views import KeyPublicView

from .limits import KeyLimits

PREFIX = "sk-corral-"
# Base62 only, so a key never holds the '-' that separates its parts (and double-clicks select it whole).
SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 43  # about 256 bits
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    secret_sha256: str
    models: tuple[str, ...] | None = None  # None: every model
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    expires_at: float | None = None
    revoked: bool = False
    created_at: float = field(default_factory=time.time)
    capture: CaptureMode | None = None  # what the archive keeps of its requests; None: the gateway's setting
    # Signs its jobs' callbacks; None for a key made before webhook secrets existed, until it is rotated.
    # repr=False: a logged or printed key never shows a secret.
    webhook_secret: str | None = field(default=None, repr=False)
    # The secret before the last rotation, which keeps signing (beside the new one) until the time after it.
    previous_webhook_secret: str | None = field(default=None, repr=False)
    previous_webhook_secret_until: float | None = None

    @property
    def limits(self) -> KeyLimits:
        return KeyLimits(rpm=self.rpm, tpm=self.tpm, max_concurrency=self.max_concurrency)

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def stored(self) -> dict[str, Any]:
        data = asdict(self)
        data["models"] = list(self.models) if self.models is not None else None
        return data

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def webhook_secrets(self, now: float) -> list[str]:
        """The secrets its callbacks are signed with now: the current one, and the previous one in its window."""
        current = [self.webhook_secret] if self.webhook_secret is not None else []
        until = self.previous_webhook_secret_until
        if self.previous_webhook_secret is not None and until is not None and now < until:
            return [*current, self.previous_webhook_secret]
        return current

    def public_view(self, *, now: float, last_used_at: float | None = None) -> KeyPublicView:
        """The key without its secret's hash, as the admin API shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "models": list(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "max_concurrency": self.max_concurrency,
            "expires_at": self.expires_at,
            "revoked": self.revoked,
            "created_at": self.created_at,
            "last_used_at": last_used_at,
            "expired": self.expired(now),
            "capture": self.capture,
        }

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> ApiKey:
        fields = dict(data)
        fields.pop("last_used_at", None)
        if fields.get("models") is not None:
            fields["models"] = tuple(fields["models"])
        return cls(**fields)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(WEBHOOK_SECRET_BYTES)).decode()


def new_key(
    name: str,
    *,
    created_at: float,
    models: tuple[str, ...] | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    max_concurrency: int | None = None,
    expires_at: float | None = None,
    capture: CaptureMode | None = None,
) -> tuple[ApiKey, str]:
    """Make a key, with a webhook secret; the key's plaintext is returned once and never stored."""
    key_id = secrets.token_hex(6)
    secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    key = ApiKey(
        id=key_id,
        name=name,
        secret_sha256=_hash(secret),
        models=models,
        rpm=rpm,
        tpm=tpm,
        max_concurrency=max_concurrency,
        expires_at=expires_at,
        created_at=created_at,
        capture=capture,
        webhook_secret=new_webhook_secret(),
    )
    return key, f"{PREFIX}{key_id}-{secret}"


def split_token(token: str) -> tuple[str, str] | None:
    if not token.startswith(PREFIX):
        return None
    key_id, sep, secret = token[len(PREFIX) :].partition("-")
    if not sep or not key_id or not secret:
        return None
    return key_id, secret


class KeyRing:
    """The keys in memory, by id. `authenticate` is on the hot path; everything else is admin."""

    def __init__(self, keys: list[ApiKey] | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._by_id: dict[str, ApiKey] = {key.id: key for key in keys or []}
        self.last_used: dict[str, float] = {}
        self._time = clock.time  # bound once: authenticate reads it on every request

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def put(self, key: ApiKey) -> None:
        self._by_id[key.id] = key

    def remove(self, key_id: str) -> None:
        self._by_id.pop(key_id, None)
        self.last_used.pop(key_id, None)

    def find(self, id_or_name: str) -> ApiKey | None:
        if id_or_name in self._by_id:
            return self._by_id[id_or_name]
        return next((key for key in self._by_id.values() if key.name == id_or_name), None)

    def find_by_id(self, key_id: str) -> ApiKey | None:
        return self._by_id.get(key_id)

    def authenticate(self, authorization: str | None) -> ApiKey:
        if not authorization:
            raise GatewayError(401, "missing API key: send 'Authorization: Bearer sk-corral-…'", code="missing_api_key")
        scheme, _, token = authorization.partition(" ")
        parts = split_token(token.strip()) if scheme.lower() == "bearer" else None
        if parts is None:
            raise GatewayError(
                401, "malformed API key: expected 'Bearer sk-corral-<id>-<secret>'", code="invalid_api_key"
            )
        key = self._by_id.get(parts[0])
        if key is None or not hmac.compare_digest(key.secret_sha256, _hash(parts[1])):
            raise GatewayError(
                401, "unknown API key: check it, or create one with `corral keys create`", code="invalid_api_key"
            )
        now = self._time()
        if key.revoked:
            raise GatewayError(401, f"API key '{key.name}' has been revoked", code="revoked_api_key")
        if key.expires_at is not None and key.expires_at <= now:
            raise GatewayError(401, f"API key '{key.name}' has expired", code="expired_api_key")
        self.last_used[key.id] = now
        return key
