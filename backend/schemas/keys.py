"""API keys as the API shows them: the caller's own (GET /api/keys/me), and those an admin makes, lists and revokes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from backend.db.models import ApiKey

# predict: single predictions, batches and their own results. read: every record, listing and batch, the
# readings, datasets and /metrics. admin: writes of stored data (readings, sensors, datasets and their shares) and keys.
Scope = Literal["predict", "read", "admin"]


class KeyIdentity(BaseModel):
    key_id: str | None = Field(description="the key's id, as records and listings name it; null when keys are off")
    name: str
    scopes: list[str] = Field(description="what the key may do: predict, read, admin")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$",
        description="who or what holds the key (no control characters)", examples=["traffic desk"],
    )  # fmt: skip
    scopes: list[Scope] = Field(default=["predict"], min_length=1, max_length=3, examples=[["predict", "read"]])


class KeyInfo(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = Field(description="null while the key is active")

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(key_id=row.id, name=row.name, scopes=row.scopes.split(","), created_at=row.created_at,
                   revoked_at=row.revoked_at)  # fmt: skip


class NewKey(KeyInfo):
    key: str = Field(description="the key itself, shown this once: only its SHA-256 is kept")
