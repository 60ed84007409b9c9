"""Queries over the model lifecycle's tables: aliases and their history, training jobs, shadow scores."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from backend.db.models import AliasMove, ModelAlias, Prediction, ShadowScore, TrainingJob, utcnow


def read_aliases(session: Session) -> dict[str, dict[str, str]]:
    aliases: dict[str, dict[str, str]] = {}
    for row in session.scalars(select(ModelAlias)):
        aliases.setdefault(row.model_name, {})[row.alias] = row.version
    return aliases


def move_alias(
    session: Session, *, model_name: str, alias: str, version: str | None, moved_by: str | None
) -> tuple[str | None, AliasMove]:
    """Point `alias` at `version` (None: remove it) and append the move to the history; the version it pointed at
    before. The row is locked (PostgreSQL) so two moves at once are recorded in the order they happened."""
    current = session.scalars(
        select(ModelAlias).where(ModelAlias.model_name == model_name, ModelAlias.alias == alias).with_for_update()
    ).first()
    before = current.version if current is not None else None
    if version is None:
        if current is not None:
            session.delete(current)
    elif current is None:
        session.add(ModelAlias(model_name=model_name, alias=alias, version=version, updated_at=utcnow()))
    else:
        current.version = version
        current.updated_at = utcnow()
    move = AliasMove(model_name=model_name, alias=alias, from_version=before, to_version=version, moved_by=moved_by,
                     moved_at=utcnow())  # fmt: skip
    session.add(move)
    return before, move


def alias_history(session: Session, *, model_name: str, limit: int) -> list[AliasMove]:
    return list(
        session.scalars(
            select(AliasMove).where(AliasMove.model_name == model_name).order_by(AliasMove.id.desc()).limit(limit)
        )
    )


def previous_champion(session: Session, *, model_name: str, current: str) -> str | None:
    """The version the champion pointed at before it came to `current` (what a rollback returns to)."""
    return session.scalar(
        select(AliasMove.from_version)
        .where(AliasMove.model_name == model_name, AliasMove.alias == "champion", AliasMove.to_version == current)
        .order_by(AliasMove.id.desc())
        .limit(1)
    )


def insert_training_job(session: Session, **fields: Any) -> TrainingJob:
    job = TrainingJob(log=[], fraction=0.0, cancel_requested=False, created_at=utcnow(), **fields)
    session.add(job)
    return job


def get_training_job(session: Session, *, job_id: str) -> TrainingJob | None:
    return session.get(TrainingJob, job_id)


def list_training_jobs(session: Session, *, model_name: str, limit: int) -> list[TrainingJob]:
    return list(
        session.scalars(
            select(TrainingJob)
            .where(TrainingJob.model_name == model_name)
            .order_by(TrainingJob.created_at.desc())
            .limit(limit)
        )
    )


def update_training_job(session: Session, *, job_id: str, only_if_status: Sequence[str] = (), **fields: Any) -> bool:
    """Set fields of a job (when its status is one of `only_if_status`, if given); whether a row changed."""
    statement = update(TrainingJob).where(TrainingJob.id == job_id)
    if only_if_status:
        statement = statement.where(TrainingJob.status.in_(only_if_status))
    return session.execute(statement.values(**fields)).rowcount > 0  # type: ignore[attr-defined]


def stale_training_error(seconds: float) -> str:
    return (f"the training process stopped (no sign of life for {seconds:.0f} s: its worker was killed or lost); "
            "no version was made")  # fmt: skip


def fail_stale_training_jobs(session: Session, *, beaten_before: datetime, error: str) -> list[tuple[str, str]]:
    """Fail the running jobs whose process last beat before `beaten_before`; their (id, model name)."""
    stale = session.execute(
        select(TrainingJob.id, TrainingJob.model_name).where(
            TrainingJob.status == "running", TrainingJob.heartbeat_at < beaten_before
        )
    ).all()
    failed = []
    for job_id, model_name in stale:
        if update_training_job(session, job_id=job_id, only_if_status=("running",), status="failure", error=error,
                               finished_at=utcnow()):  # fmt: skip
            failed.append((job_id, model_name))
    return failed


def insert_shadow_scores(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(ShadowScore), list(rows))


def shadow_summary(
    session: Session, *, model_name: str, champion: str, challenger: str, since: datetime | None = None
) -> dict[str, Any]:
    difference = func.abs(ShadowScore.challenger_value - ShadowScore.champion_value)
    level_differs = case((ShadowScore.champion_level != ShadowScore.challenger_level, 1), else_=0)
    query = select(
        func.count(),
        func.avg(difference),
        func.max(difference),
        func.avg(ShadowScore.challenger_value - ShadowScore.champion_value),
        func.sum(level_differs),
        func.min(ShadowScore.created_at),
        func.max(ShadowScore.created_at),
    ).where(
        ShadowScore.model_name == model_name,
        ShadowScore.champion_version == champion,
        ShadowScore.challenger_version == challenger,
    )
    if since is not None:
        query = query.where(ShadowScore.created_at >= since)
    count, mean_abs, largest, mean_signed, levels, first, last = session.execute(query).one()
    return {
        "count": int(count or 0),
        "mean_abs_difference": float(mean_abs) if mean_abs is not None else None,
        "largest_difference": float(largest) if largest is not None else None,
        "mean_difference": float(mean_signed) if mean_signed is not None else None,
        "level_differs_share": (int(levels or 0) / count) if count else None,
        "first": first,
        "last": last,
    }


def delete_shadow_scores(session: Session, *, model_name: str) -> None:
    session.execute(delete(ShadowScore).where(ShadowScore.model_name == model_name))


def recorded_inputs(
    session: Session, *, model_name: str, since: datetime, until: datetime, limit: int
) -> list[tuple[dict[str, Any], dict[str, Any] | None, float | None]]:
    """The newest `limit` single predictions of a model in [since, until): inputs, the whole answer (other
    kinds) and the ECLO figure (the ECLO kind keeps its answer in columns)."""
    rows = session.execute(
        select(Prediction.inputs, Prediction.output, Prediction.eclo)
        .where(Prediction.model_name == model_name, Prediction.created_at >= since, Prediction.created_at < until)
        .order_by(Prediction.created_at.desc())
        .limit(limit)
    )
    return [(r[0], r[1], r[2]) for r in rows]
