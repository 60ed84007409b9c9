"""Small query functions over the records; keyword-only, a session passed in."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarResult, Select, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from backend.db.listings import Order, Slice, slice_of
from backend.db.models import BatchJob, BatchRow, Prediction, utcnow
from backend.db.partitions import days_of, ensure_days


def insert_predictions(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Rows whose `record_id` is stored already are skipped: a retried write lands once. A field a row lacks is
    stored as its column's default (an ECLO record has no `output`, a congestion one no `eclo`, and one spilled
    to disk by a version before key ids has no `key_id`)."""
    if not rows:
        return
    connection = session.connection()
    now = utcnow()
    for row in rows:
        row.setdefault("created_at", now)
    ensure_days(connection, "predictions", days_of({row["created_at"] for row in rows}))
    plan = _record_insert_plan(connection.dialect)
    if plan is None:
        session.execute(insert(Prediction.__table__), [{**RECORD_DEFAULTS, **row} for row in rows])
        return
    for start in range(0, len(rows), plan.rows_per_statement):
        chunk = rows[start : start + plan.rows_per_statement]
        connection.exec_driver_sql(plan.statement(len(chunk)), plan.parameters(chunk))


RECORD_DEFAULTS: dict[str, Any] = {"eclo": None, "risk_level": None, "output": None, "key_id": None,
                                   "record_id": None, "request_id": None, "cached": False}  # fmt: skip


class _RecordInsert:
    """The records' flush as multi-row INSERT statements written for the DBAPI, each column's value passed through
    SQLAlchemy's own bind processor for the dialect (so stored alike to an ORM write). A Core insert of the same
    rows spent most of its time in SQLAlchemy's parameter handling, on the API's writer thread, holding the GIL the
    event loop needs; an executemany would step SQLite once a row, trading the GIL each time."""

    def __init__(self, dialect: Dialect, max_parameters: int) -> None:
        table = Prediction.__table__
        self.columns = [c for c in table.columns if c.name != "id"]
        self.processors = [(c.name, c.type.dialect_impl(dialect).bind_processor(dialect)) for c in self.columns]
        placeholder = "?" if dialect.paramstyle == "qmark" else "%s"
        self.group = "(" + ", ".join([placeholder] * len(self.columns)) + ")"
        quote = dialect.identifier_preparer.quote
        self.head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in self.columns)}) VALUES "
        self.tail = " ON CONFLICT (record_id, created_at) DO NOTHING"
        self.rows_per_statement = max(1, min(1000, max_parameters // len(self.columns)))

    def statement(self, count: int) -> str:
        return self.head + ", ".join([self.group] * count) + self.tail

    def parameters(self, rows: Sequence[dict[str, Any]]) -> tuple[Any, ...]:
        values: list[Any] = []
        append = values.append
        now = utcnow()
        for row in rows:
            for name, process in self.processors:
                value = row.get(name, now) if name == "created_at" else row.get(name, RECORD_DEFAULTS.get(name))
                append(value if process is None else process(value))
        return tuple(values)


_RECORD_INSERTS: dict[Any, _RecordInsert | None] = {}


def _record_insert_plan(dialect: Dialect) -> _RecordInsert | None:
    """The plan for PostgreSQL and SQLite (both take ON CONFLICT on the record id's unique index), else None."""
    key = (dialect.name, dialect.driver)
    if key not in _RECORD_INSERTS:
        if dialect.name == "sqlite":
            # SQLite takes at most 32,766 parameters a statement since 3.32, 999 before
            limit = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
            _RECORD_INSERTS[key] = _RecordInsert(dialect, limit)
        elif dialect.name == "postgresql":
            _RECORD_INSERTS[key] = _RecordInsert(dialect, 65_535)
        else:
            _RECORD_INSERTS[key] = None
    return _RECORD_INSERTS[key]


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


PREDICTIONS_ORDER: Order = ((Prediction.created_at, True), (Prediction.id, True))  # newest first


def list_predictions(
    session: Session,
    *,
    size: int,
    offset: int = 0,
    after: tuple[datetime, int] | None = None,
    count_limit: int | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    key_id: str | None = None,
) -> Slice[Prediction]:
    """Newest first, `offset` rows in or after the (created_at, id) `after`; served by the created_at indexes
    (alone, or after the model's or the key's)."""
    query = _predictions_query(model, since, until, key_id)
    return slice_of(session, query, order=PREDICTIONS_ORDER, size=size, offset=offset, after=after,
                    count_limit=count_limit)  # fmt: skip


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


BATCH_JOBS_ORDER: Order = ((BatchJob.created_at, True), (BatchJob.id, False))  # newest first


def list_batch_jobs(
    session: Session,
    *,
    size: int,
    offset: int = 0,
    after: tuple[datetime, str] | None = None,
    count_limit: int | None = None,
    status: str | None = None,
) -> Slice[BatchJob]:
    query = select(BatchJob)
    if status is not None:
        query = query.where(BatchJob.status == status)
    return slice_of(session, query, order=BATCH_JOBS_ORDER, size=size, offset=offset, after=after,
                    count_limit=count_limit)  # fmt: skip
