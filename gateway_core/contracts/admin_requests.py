"""What the admin API accepts for keys, validated so a bad field gets a 400 that names it.

Here rather than beside the rules (gateway/key_store.py) because the console validates its key forms with the
same models before it sends them, and it must not import the daemon's gateway package.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway_core.contracts.archive import CaptureMode

# A century: beyond it an expiry is a typo, and a non-finite one would be stored as no expiry at all.
MAX_EXPIRY_DAYS = 36_500


class KeySpec(BaseModel):
    """POST /keys: a new key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    models: list[str] | None = None  # None: every model
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    expires_in_days: float | None = Field(default=None, gt=0, le=MAX_EXPIRY_DAYS, allow_inf_nan=False)
    # What the archive keeps of this key's requests: off, metadata or full; null: the gateway's setting.
    capture: CaptureMode | None = None


class KeyUpdate(BaseModel):
    """PATCH /keys/{id}: only the fields sent change; `expires_in_days: null` removes the expiry."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=64)
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    expires_in_days: float | None = Field(default=None, gt=0, le=MAX_EXPIRY_DAYS, allow_inf_nan=False)
    # What the archive keeps of this key's requests: off, metadata or full; null: the gateway's setting.
    capture: CaptureMode | None = None
