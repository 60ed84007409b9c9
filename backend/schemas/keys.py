"""What GET /api/keys/me tells a caller of the key it sent."""

from __future__ import annotations

from pydantic import BaseModel, Field


class KeyIdentity(BaseModel):
    key_id: str | None = Field(description="the key's id, as records and listings name it; null when keys are off")
    name: str
    scopes: list[str] = Field(description="what the key may do: predict, read, admin")
