"""Small query functions over the records; keyword-only, a session passed in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarResult, Select, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from backend.db.models import BatchJob, BatchRow, Prediction

EMPTY_RECORD_FIELDS: dict[str, Any] = dict.fromkeys(("eclo", "risk_level", "output", "key_id"))
OPTIONAL_RECORD_FIELDS = EMPTY_RECORD_FIELDS.keys()


def insert_predictions(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Rows whose `record_id` is stored already are skipped: a retried write lands once."""
    if not rows:
        return
    # An executemany needs every column in every row: an ECLO record has no `output`, a congestion one no `eclo`,
    # and one spilled to disk by a version before key ids has no `key_id`.
    rows = [row if OPTIONAL_RECORD_FIELDS <= row.keys() else {**EMPTY_RECORD_FIELDS, **row} for row in rows]
    table = Prediction.__table__  # a Core executemany: the ORM's bulk path costs the API's writer thread more
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        # RETURNING makes SQLAlchemy send the rows as multi-row INSERTs ("insertmanyvalues"): sqlite3's
        # executemany steps once a row, giving the GIL back and taking it again each time, and that
        # ping-pong with the API's event loop cost more than the inserts (+13% predictions/s under load).
        upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = upsert(table).on_conflict_do_nothing(index_elements=["record_id"]).returning(table.c.id)
    else:
        statement = insert(table)
    session.execute(statement, list(rows))


def _predictions_query(
    model: str | None, since: datetime | None, until: datetime | None, key_id: str | None
) -> Select[tuple[Prediction]]:
    query = select(Prediction)
    if model is not None:
        query = query.where(Prediction.model_name == model)
    if key_id is not None:
        query = query.where(Prediction.key_id == key_id)
    if since is not None:
        query = query.where(Prediction.created_at >= since)
    if until is not None:
        query = query.where(Prediction.created_at < until)
    return query


def list_predictions(
    session: Session,
    *,
    page: int,
    size: int,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    key_id: str | None = None,
) -> tuple[list[Prediction], int]:
    query = _predictions_query(model, since, until, key_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(Prediction.created_at.desc(), Prediction.id.desc()).offset((page - 1) * size).limit(size)
    ).all()
    return list(items), total


def iter_predictions(
    session: Session,
    *,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    key_id: str | None = None,
    chunk: int = 1000,
) -> ScalarResult[Prediction]:
    """Every matching record, oldest first, fetched `chunk` rows at a time (memory stays flat however many); the
    query runs now, so a database error is raised here, not halfway through."""
    query = _predictions_query(model, since, until, key_id).order_by(Prediction.created_at, Prediction.id)
    return session.scalars(query.execution_options(yield_per=chunk))


def _existing_or_added_job(session: Session, batch_id: str, fields: dict[str, Any]) -> tuple[BatchJob, bool]:
    """The stored job, or a new one with `fields`; (job, added). The API (pending) and the worker may race to
    write a job first: a concurrent insert is caught and the winner's row returned."""
    job = session.get(BatchJob, batch_id)
    if job is not None:
        return job, False
    try:
        with session.begin_nested():
            job = BatchJob(id=batch_id, **fields)
            session.add(job)
        return job, True
    except IntegrityError:
        job = session.get(BatchJob, batch_id, populate_existing=True)
        assert job is not None
        return job, False


def upsert_batch_job(session: Session, *, batch_id: str, **fields: Any) -> BatchJob:
    """Create the job or update the given fields."""
    job, _ = _existing_or_added_job(session, batch_id, fields)
    for name, value in fields.items():
        setattr(job, name, value)
    return job


def insert_batch_job_if_absent(session: Session, *, batch_id: str, **fields: Any) -> None:
    """The API's pending record; a worker that already wrote the job wins."""
    _existing_or_added_job(session, batch_id, fields)


def save_batch_rows(session: Session, *, batch_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """Store the per-row outcomes once; a redelivered task finding them stored leaves them as they are."""
    stored = set(session.scalars(select(BatchRow.row_index).where(BatchRow.batch_id == batch_id)))
    fresh = [{**row, "batch_id": batch_id} for row in rows if row["row_index"] not in stored]
    if fresh:
        session.execute(insert(BatchRow), fresh)


def get_batch_job(session: Session, *, batch_id: str) -> BatchJob | None:
    return session.scalar(select(BatchJob).where(BatchJob.id == batch_id).options(selectinload(BatchJob.rows)))


def list_batch_jobs(session: Session, *, page: int, size: int, status: str | None = None) -> tuple[list[BatchJob], int]:
    query = select(BatchJob)
    if status is not None:
        query = query.where(BatchJob.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(
        query.order_by(BatchJob.created_at.desc(), BatchJob.id).offset((page - 1) * size).limit(size)
    ).all()
    return list(items), total
