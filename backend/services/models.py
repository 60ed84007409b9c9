"""The model lifecycle: versions, training jobs (run by `models.train` on the workers' training queue), the
champion and challenger aliases and their history, the shadow summary and the drift report.

The alias table is the truth of what is served: every process's `ModelWatcher` follows it within
MODEL_RELOAD_SECONDS, so this service answers from the table, never from its own process's registry alone.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.exceptions import OperationalError
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.core.errors import Conflict, DependencyUnavailable, InvalidRequest, NotFound
from backend.core.metrics import MODEL_DRIFT_PSI, MODEL_DRIFT_SHARE
from backend.db import lifecycle as records
from backend.db.models import Dataset, DatasetJob, TrainingJob
from backend.db.session import guarded_session
from backend.ml import drift
from backend.ml.eclo.dacon import SEVERE_COLUMNS
from backend.ml.registry import CHALLENGER, CHAMPION
from backend.ml.versions import VersionFolder
from backend.schemas.lifecycle import (
    TRAINING_FINAL,
    AliasHistory,
    AliasMoved,
    AliasMoveOut,
    DriftReport,
    ShadowSummary,
    TrainingAccepted,
    TrainingJobList,
    TrainingJobOut,
    TrainRequest,
    VersionList,
    VersionOut,
)
from backend.wiring import Resources

log = logging.getLogger(__name__)

TRAINABLE_KINDS = ("eclo", "congestion")
MAX_READINGS_SPAN = timedelta(days=366)
DRIFT_WINDOW = timedelta(days=7)
HISTORY_LIMIT = 200
_METRIC = re.compile(r"^(mae|rmse|mape|coverage|baseline_[a-z]+_[a-z]+)_\d+$")
COMPARED = {"eclo": "eclo (expected ECLO)", "congestion": "speed_mph of the first forecast (15 minutes)"}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def version_metrics(metadata: dict[str, Any]) -> dict[str, Any]:
    """A version's own evaluation figures, whatever its kind (the big tables of the metadata left out)."""
    metrics = {k: v for k, v in metadata.items() if _METRIC.match(k)}
    if "cv" in metadata:
        metrics["cv"] = metadata["cv"]
    temporal = metadata.get("temporal")
    if temporal:
        metrics["temporal"] = {k: temporal.get(k) for k in ("train_years", "test_years", "test_rows", "eclo", "severe")}
    return metrics


class ModelLifecycle:
    def __init__(self, resources: Resources, clock: Callable[[], datetime] = _utcnow) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.registry = resources.registry
        assert self.registry.versions is not None, "the registry is opened with a versions folder"
        self.versions_store = self.registry.versions
        self.clock = clock

    def _session(self, what: str) -> Any:
        return guarded_session(self.resources.sessions, what)

    def _aliases(self, name: str) -> dict[str, str]:
        with self._session("read the model aliases") as session:
            return records.read_aliases(session).get(name, {})

    def champion(self, name: str) -> str:
        return self._aliases(name).get(CHAMPION) or self.registry.default_version(name)

    # Versions

    def versions(self, name: str) -> VersionList:
        aliases = self._aliases(name)
        champion = aliases.get(CHAMPION) or self.registry.default_version(name)
        found = self.versions_store.list(name)
        challenger = aliases.get(CHALLENGER)
        kept = {v.version for v in found[-self.settings.model_keep_versions :]}
        return VersionList(
            name=name,
            champion=champion,
            challenger=challenger,
            rollback_to=self._rollback_target(name, champion),
            keep_versions=self.settings.model_keep_versions,
            versions=[self._version_out(v, champion, challenger, kept) for v in found],
        )

    @staticmethod
    def _version_out(found: VersionFolder, champion: str, challenger: str | None, kept: set[str]) -> VersionOut:
        names = [a for a, v in ((CHAMPION, champion), (CHALLENGER, challenger)) if v == found.version]
        metadata = found.metadata
        training_data = dict(metadata.get("training_data") or {})
        if not training_data:  # the committed default: what its metadata says it was trained on
            training_data = {k: metadata[k] for k in ("data_source", "rows", "years", "time_range") if k in metadata}
        return VersionOut(
            version=found.version,
            kind=str(metadata.get("kind", "")),
            is_default=found.is_default,
            aliases=names,
            trained_at=metadata.get("trained_at"),
            training_data=training_data,
            metrics=version_metrics(metadata),
            comparison=metadata.get("comparison"),
            deletable=not (found.is_default or names or found.version in kept),
        )

    def delete_version(self, name: str, version: str) -> None:
        listing = self.versions(name)
        found = next((v for v in listing.versions if v.version == version), None)
        if found is None:
            raise NotFound(f"model {name!r} has no version {version!r}")
        if not found.deletable:
            why = ("it is the committed default" if found.is_default else
                   f"it is the {' and '.join(found.aliases)}" if found.aliases else
                   f"it is among the last {self.settings.model_keep_versions} (MODEL_KEEP_VERSIONS)")  # fmt: skip
            raise Conflict(f"version {version} cannot be deleted: {why}")
        self.versions_store.delete(name, version)

    # Training

    def train(self, name: str, request: TrainRequest, key_id: str | None) -> TrainingAccepted:
        kind = self.registry.get(name).kind
        if kind not in TRAINABLE_KINDS:
            message = f"model {name!r} is of kind {kind!r}, which cannot be trained here"
            raise InvalidRequest(
                f"{message}; trainable kinds: {', '.join(TRAINABLE_KINDS)}", details=[{"field": "name"}]
            )
        body = self._check_request(kind, request)
        job_id = uuid.uuid4().hex
        with self._session("record the training job") as session:
            records.insert_training_job(session, id=job_id, model_name=name, kind=kind, status="pending",
                                        request=body, requested_by=key_id, stage="queued")  # fmt: skip
            session.commit()
        from backend.tasks.training import train_version

        try:
            train_version.apply_async(args=[job_id], task_id=f"training-{job_id}")
        except (OperationalError, OSError) as exc:
            with self._session("record the training job") as session:
                records.update_training_job(session, job_id=job_id, status="failure", finished_at=self.clock(),
                                            error="the job could not be queued (broker unreachable)")  # fmt: skip
                session.commit()
            raise DependencyUnavailable("redis", "cannot queue the training job on the broker") from exc
        return TrainingAccepted(job_id=job_id, status="pending", poll_url=f"/api/models/{name}/training/{job_id}")

    def _check_request(self, kind: str, request: TrainRequest) -> dict[str, Any]:
        if kind == "eclo":
            extra = [f for f in ("since", "until") if getattr(request, f) is not None]
            if extra or not request.dataset_ids or request.holdout_from_year is None:
                raise InvalidRequest(
                    "an ECLO version is trained from `dataset_ids` (uploaded accident files with outcomes) and "
                    "`holdout_from_year` (the first held-out year)"
                    + (f"; {', '.join(extra)} is for congestion" if extra else ""),
                    details=[{"field": f} for f in ("dataset_ids", "holdout_from_year", *extra)],
                )
            ids = list(dict.fromkeys(request.dataset_ids))
            with self._session("read the datasets") as session:
                found = {d.id: d for d in session.scalars(select(Dataset).where(Dataset.id.in_(ids)))}
            for index, dataset_id in enumerate(ids):
                dataset = found.get(dataset_id)
                field = f"dataset_ids[{index}]"
                if dataset is None:
                    raise InvalidRequest(f"{field}: no dataset {dataset_id[:40]!r}", details=[{"field": field}])
                if dataset.model_name is None or dataset.layout is None:
                    raise InvalidRequest(f"{field}: dataset {dataset_id} is a table, not an accident file",
                                         details=[{"field": field}])  # fmt: skip
                lacking = [c for c in SEVERE_COLUMNS if c not in (dataset.columns or [])]
                if dataset.has_outcomes and lacking:
                    message = f"has no {', '.join(lacking)} column: the severe-outcome model cannot learn without it"
                    raise InvalidRequest(f"{field}: dataset {dataset_id} {message}", details=[{"field": field}])
                if not dataset.has_outcomes:
                    message = "has no outcome columns (사망자수, 중상자수, 경상자수, 부상자수): nothing to learn from"
                    raise InvalidRequest(f"{field}: dataset {dataset_id} {message}", details=[{"field": field}])
            return {"dataset_ids": ids, "holdout_from_year": request.holdout_from_year, "seed": request.seed}
        extra = [f for f in ("dataset_ids", "holdout_from_year") if getattr(request, f) is not None]
        if extra or request.since is None or request.until is None:
            raise InvalidRequest(
                "a congestion version is trained from the readings stored between `since` and `until` (times with "
                "their zone)" + (f"; {', '.join(extra)} is for ECLO" if extra else ""),
                details=[{"field": f} for f in ("since", "until", *extra)],
            )  # fmt: skip
        since, until = request.since.astimezone(UTC), request.until.astimezone(UTC)
        if until <= since or until - since > MAX_READINGS_SPAN:
            raise InvalidRequest(f"until must be after since and at most {MAX_READINGS_SPAN.days} days later",
                                 details=[{"field": "until"}])  # fmt: skip
        return {"since": since.isoformat(), "until": until.isoformat(), "seed": request.seed}

    def job(self, name: str, job_id: str) -> TrainingJobOut:
        with self._session("read the training job") as session:
            job = records.get_training_job(session, job_id=job_id)
            if job is None or job.model_name != name:
                raise NotFound(f"model {name!r} has no training job {job_id[:40]!r}")
            job = self._fail_if_stale(session, job)
        return _job_out(job)

    def jobs(self, name: str) -> TrainingJobList:
        self.registry.get(name)
        with self._session("read the training jobs") as session:
            jobs = [self._fail_if_stale(session, j) for j in records.list_training_jobs(session, model_name=name,
                                                                                          limit=50)]  # fmt: skip
        return TrainingJobList(jobs=[_job_out(j) for j in jobs])

    def _fail_if_stale(self, session: Session, job: TrainingJob) -> TrainingJob:
        """A running job whose process stopped beating was killed with its worker: failed, its partial folder
        removed (no version is left behind). The beat's reconciliation does the same for jobs no one reads."""
        if job.status != "running" or job.heartbeat_at is None:
            return job
        seconds = self.settings.training_stale_seconds
        failed = records.fail_stale_training_jobs(session, beaten_before=self.clock() - timedelta(seconds=seconds),
                                                  error=records.stale_training_error(seconds))  # fmt: skip
        session.commit()
        for job_id, model_name in failed:
            log.warning("training job %s failed: its process stopped", job_id)
            self.versions_store.discard(self.versions_store.partial_path(model_name, job_id))
        session.refresh(job)
        return job

    def cancel(self, name: str, job_id: str) -> TrainingJobOut:
        with self._session("cancel the training job") as session:
            job = records.get_training_job(session, job_id=job_id)
            if job is None or job.model_name != name:
                raise NotFound(f"model {name!r} has no training job {job_id[:40]!r}")
            if job.status in TRAINING_FINAL:
                raise Conflict(f"training job {job_id} is already {job.status}")
            now = self.clock()
            if not records.update_training_job(session, job_id=job_id, only_if_status=("pending",),
                                               status="cancelled", finished_at=now, error="cancelled"):  # fmt: skip
                # Running: the training stops at its next step and cleans up.
                records.update_training_job(session, job_id=job_id, cancel_requested=True)
            session.commit()
            session.refresh(job)
        return _job_out(job)

    # Aliases

    def move_alias(self, name: str, alias: str, version: str, key_id: str | None) -> AliasMoved:
        self.registry.get(name)
        self.versions_store.get(name, version)  # VersionNotFound (404)
        if alias == CHALLENGER and version == self.champion(name):
            raise Conflict(f"version {version} is the champion; a challenger is another version")
        with self._session("move the alias") as session:
            before, _ = records.move_alias(session, model_name=name, alias=alias, version=version, moved_by=key_id)
            if alias == CHAMPION and records.read_aliases(session).get(name, {}).get(CHALLENGER) == version:
                records.move_alias(session, model_name=name, alias=CHALLENGER, version=None, moved_by=key_id)
            session.commit()
        log.info("model %s: %s moved from %s to %s", name, alias, before, version)
        return AliasMoved(name=name, alias=alias, version=version, previous=before,
                          reload_seconds=self.settings.model_reload_seconds)  # fmt: skip

    def remove_alias(self, name: str, alias: str, key_id: str | None) -> AliasMoved:
        self.registry.get(name)
        if alias == CHAMPION:
            raise Conflict("the champion cannot be removed; move it to another version (or roll back)")
        with self._session("remove the alias") as session:
            before, _ = records.move_alias(session, model_name=name, alias=alias, version=None, moved_by=key_id)
            session.commit()
        return AliasMoved(name=name, alias=alias, version=None, previous=before,
                          reload_seconds=self.settings.model_reload_seconds)  # fmt: skip

    def _rollback_target(self, name: str, current: str) -> str | None:
        """The version the champion pointed at before it came to `current` (else the default); None when there is
        none other."""
        with self._session("read the alias history") as session:
            previous = records.previous_champion(session, model_name=name, current=current)
        previous = previous or self.registry.default_version(name)
        return previous if previous != current else None

    def rollback(self, name: str, key_id: str | None) -> AliasMoved:
        """Move the champion back to the version it pointed at before its last move."""
        previous = self._rollback_target(name, self.champion(name))
        if previous is None:
            raise Conflict(f"the champion of {name!r} has no earlier version to roll back to")
        return self.move_alias(name, CHAMPION, previous, key_id)

    def history(self, name: str) -> AliasHistory:
        self.registry.get(name)
        with self._session("read the alias history") as session:
            moves = records.alias_history(session, model_name=name, limit=HISTORY_LIMIT)
        return AliasHistory(name=name, moves=[AliasMoveOut.model_validate(m, from_attributes=True) for m in moves])

    # Shadow and drift

    def shadow(self, name: str) -> ShadowSummary:
        kind = self.registry.get(name).kind
        aliases = self._aliases(name)
        champion = aliases.get(CHAMPION) or self.registry.default_version(name)
        challenger = aliases.get(CHALLENGER)
        summary: dict[str, Any] = {"count": 0, "mean_abs_difference": None, "mean_difference": None,
                                   "largest_difference": None, "level_differs_share": None, "first": None,
                                   "last": None}  # fmt: skip
        if challenger is not None:
            with self._session("read the shadow scores") as session:
                summary = records.shadow_summary(session, model_name=name, champion=champion, challenger=challenger)
        return ShadowSummary(name=name, champion=champion, challenger=challenger, compared=COMPARED.get(kind, "none"),
                             sample_rate=self.settings.shadow_sample_rate, **summary)  # fmt: skip

    def drift(self, name: str, since: datetime | None, until: datetime | None) -> DriftReport:
        model = self.registry.get(name)
        until = (until or self.clock()).astimezone(UTC)
        since = (since or until - DRIFT_WINDOW).astimezone(UTC)
        if since >= until:
            raise InvalidRequest("since must be before until", details=[{"field": "since"}])
        reference = model.metadata.get("drift_reference")
        base = {"name": name, "version": model.version, "since": since, "until": until}
        if not reference:
            return DriftReport(**base, rows=0, threshold=0.2, drifted_share=None, fields=[], predictions=[],
                               note=f"version {model.version} keeps no training reference to compare with")  # fmt: skip
        limit = self.settings.drift_max_rows
        with self._session("read the recorded inputs") as session:
            recorded = records.recorded_inputs(session, model_name=name, since=since, until=until, limit=limit)
            inputs = [r[0] for r in recorded]
            outputs = [r[1] if r[1] is not None else {"eclo": r[2]} for r in recorded]
            inputs += self._scored_dataset_inputs(session, name, since, until, limit - len(inputs))
        report = drift.drift_of(model.kind, reference, inputs, outputs)
        MODEL_DRIFT_SHARE.labels(name).set(report["drifted_share"] or 0.0)
        for field in report["fields"] + report["predictions"]:
            if field.get("psi") is not None:
                MODEL_DRIFT_PSI.labels(name, field["field"]).set(field["psi"])
        note = None if inputs else "no predictions recorded in this window"
        return DriftReport(**base, rows=len(inputs), threshold=report["threshold"],
                           drifted_share=report["drifted_share"], fields=report["fields"],
                           predictions=report["predictions"], note=note)  # fmt: skip

    def _scored_dataset_inputs(self, session: Session, name: str, since: datetime, until: datetime,
                               limit: int) -> list[dict[str, Any]]:  # fmt: skip
        """The rows of the datasets scored by this model whose job finished in the window (bounded)."""
        if limit <= 0:
            return []
        jobs = session.scalars(
            select(DatasetJob).where(
                DatasetJob.model_name == name,
                DatasetJob.status.in_(("success", "partial")),
                DatasetJob.finished_at >= since,
                DatasetJob.finished_at < until,
            )  # fmt: skip
        ).all()
        rows: list[dict[str, Any]] = []
        for dataset_id in dict.fromkeys(j.dataset_id for j in jobs):
            try:
                for _, row, _ in self.resources.dataset_files.iter_rows(dataset_id):
                    rows.append(row)
                    if len(rows) >= limit:
                        return rows
            except OSError:  # deleted meanwhile
                continue
        return rows


def _job_out(job: TrainingJob) -> TrainingJobOut:
    return TrainingJobOut(job_id=job.id, model_name=job.model_name, status=job.status, stage=job.stage,  # type: ignore[arg-type]
                          fraction=job.fraction, log=list(job.log or []), version=job.version, error=job.error,
                          request=job.request, created_at=job.created_at, started_at=job.started_at,
                          finished_at=job.finished_at)  # fmt: skip
