"""The recorded history of single predictions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from backend.db import crud
from backend.schemas.pages import Page
from backend.schemas.records import PredictionRecord


def list_predictions(
    *, session: Session, page: int, size: int, model: str | None, since: datetime | None, key_id: str | None = None
) -> Page[PredictionRecord]:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    records, total = crud.list_predictions(session, page=page, size=size, model=model, since=since, key_id=key_id)
    items = [PredictionRecord.model_validate(r, from_attributes=True) for r in records]
    return Page[PredictionRecord].build(items=items, total=total, page=page, size=size)
