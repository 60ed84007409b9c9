"""Queries over datasets, their scoring jobs and their share tokens; keyword-only, a session passed in."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from backend.db.models import Dataset, DatasetJob, ShareToken


def insert_dataset(session: Session, **fields: Any) -> Dataset:
    dataset = Dataset(**fields)
    session.add(dataset)
    return dataset


def get_dataset(session: Session, *, dataset_id: str) -> Dataset | None:
    return session.get(Dataset, dataset_id)


def list_datasets(session: Session, *, page: int, size: int) -> tuple[list[Dataset], int]:
    total = session.scalar(select(func.count()).select_from(Dataset)) or 0
    items = session.scalars(
        select(Dataset).order_by(Dataset.uploaded_at.desc(), Dataset.id).offset((page - 1) * size).limit(size)
    ).all()
    return list(items), total


def delete_dataset(session: Session, *, dataset_id: str) -> bool:
    """The dataset, its jobs and its share tokens (explicitly: SQLite enforces no foreign keys by default)."""
    session.execute(delete(ShareToken).where(ShareToken.dataset_id == dataset_id))
    session.execute(delete(DatasetJob).where(DatasetJob.dataset_id == dataset_id))
    return session.execute(delete(Dataset).where(Dataset.id == dataset_id)).rowcount > 0  # type: ignore[attr-defined]


def insert_job(session: Session, **fields: Any) -> DatasetJob:
    job = DatasetJob(**fields)
    session.add(job)
    session.execute(update(Dataset).where(Dataset.id == fields["dataset_id"]).values(latest_job_id=fields["id"]))
    return job


def get_job(session: Session, *, job_id: str) -> DatasetJob | None:
    return session.get(DatasetJob, job_id)


def update_job(session: Session, *, job_id: str, **fields: Any) -> None:
    session.execute(update(DatasetJob).where(DatasetJob.id == job_id).values(**fields))


def insert_share(session: Session, **fields: Any) -> ShareToken:
    share = ShareToken(**fields)
    session.add(share)
    return share


def get_share(session: Session, *, token_hash: str) -> ShareToken | None:
    return session.get(ShareToken, token_hash)
