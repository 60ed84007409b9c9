"""The recorded history of single predictions: pages of it, and all of it as CSV."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.csv_stream import csv_chunks
from backend.core.errors import DependencyUnavailable
from backend.db import records as stored_records
from backend.db.models import Prediction
from backend.schemas.pages import Page, Position
from backend.schemas.records import PredictionRecord

CSV_COLUMNS = ("created_at", "model_name", "model_version", "key_id", "request_id", "cached", "latency_ms", "eclo",
               "risk_level", "inputs", "output")  # fmt: skip


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def list_predictions(
    *,
    session: Session,
    page: int,
    size: int,
    model: str | None,
    since: datetime | None,
    until: datetime | None = None,
    key_id: str | None = None,
    cursor: str | None = None,
) -> Page[PredictionRecord]:
    at = Position.of("records", page=page, size=size, cursor=cursor, tie=int)
    found = stored_records.list_predictions(
        session, size=size, offset=at.offset, after=at.after, count_limit=at.count_limit,
        model=model, since=_utc(since), until=_utc(until), key_id=key_id,
    )  # fmt: skip
    last = found.items[-1] if found.more else None
    return Page[PredictionRecord].build(
        items=[PredictionRecord.model_validate(r, from_attributes=True) for r in found.items],
        total=found.total, total_exact=found.total_exact, page=at.page, size=size,
        next=None if last is None else at.cursor_after((last.created_at, last.id)),
    )  # fmt: skip


def _cells(record: Prediction) -> list[Any]:
    return [
        record.created_at.isoformat(), record.model_name, record.model_version, record.key_id or "",
        record.request_id or "", record.cached, round(record.latency_ms, 3), "" if record.eclo is None else record.eclo,
        record.risk_level or "", orjson.dumps(record.inputs).decode(),
        "" if record.output is None else orjson.dumps(record.output).decode(),
    ]  # fmt: skip


def predictions_csv(
    sessions: sessionmaker[Session],
    *,
    model: str | None,
    since: datetime | None,
    until: datetime | None,
    key_id: str | None,
) -> Iterator[bytes]:
    """Every matching record as CSV (`csv_chunks`), oldest first, `inputs` and `output` as JSON. The query runs
    before the answer starts (a database that is down is a 503, not a cut stream), in a session of its own that
    the stream closes."""
    session = sessions()
    try:
        records = stored_records.iter_predictions(
            session, model=model, since=_utc(since), until=_utc(until), key_id=key_id
        )
    except SQLAlchemyError as exc:
        session.close()
        raise DependencyUnavailable("database", "cannot read the records") from exc

    def stream() -> Iterator[bytes]:
        try:
            yield from csv_chunks(CSV_COLUMNS, map(_cells, records))
        finally:
            session.close()

    return stream()
