"""Datasets: an upload checked row by row against the model and kept as files, its scoring as one job of
chunks spread over the workers (backend.tasks.datasets), its results in the file's order, and share links."""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import redis
from kombu.exceptions import OperationalError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from backend.core.csv_stream import csv_chunks
from backend.core.errors import Conflict, DependencyUnavailable, Gone, InvalidRequest, NotFound
from backend.db import datasets as records
from backend.db.models import Dataset, DatasetJob
from backend.db.session import session_scope
from backend.ml.eclo.uploads import FileFormat, data_rows
from backend.schemas.batches import FAILURE, PARTIAL, PENDING, SUCCESS, BatchProgress
from backend.schemas.datasets import (
    DatasetDetail,
    DatasetJobAccepted,
    DatasetJobStatus,
    DatasetOut,
    DatasetProblem,
    ShareCreated,
    SharedDataset,
)
from backend.schemas.pages import Page
from backend.services.batches import from_epoch
from backend.services.upload_check import AUTO, TABLE, UploadChecker
from backend.stores.dataset_jobs import CANCELLED, JobRecord
from backend.tasks.datasets import score_chunk
from backend.wiring import Resources

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("predicted_eclo", "p_severe", "risk_level", "model_version", "error")
DEFAULT_MODEL = "eclo"
_ID_LENGTH = 32


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DatasetService:
    def __init__(self, resources: Resources, checker: UploadChecker, clock: Callable[[], datetime] = _utcnow) -> None:
        self.resources = resources
        self.checker = checker
        self.settings = resources.settings
        self.files = resources.dataset_files
        self.jobs = resources.dataset_jobs
        self.clock = clock

    # Uploads

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def source_key(self, dataset_id: str) -> str:
        return self.files.source(dataset_id)

    def discard(self, dataset_id: str) -> None:
        self.files.storage.delete_prefix(self.files.folder(dataset_id))

    def ingest(
        self,
        dataset_id: str,
        *,
        filename: str,
        size: int,
        checksum: str,
        name: str | None = None,
        encoding: str | None = None,
        kind: str = AUTO,
    ) -> DatasetOut:
        """Check the stored upload and describe it; nothing is kept when the file is unusable (a 4xx naming why)
        or cannot be recorded. `kind`: "auto" (an accident file is checked against the default model, any other
        table kept as a table), "table", or a model's name (the file must be in its layout)."""
        try:
            return self._ingest(dataset_id, filename, size, checksum, name, encoding, kind)
        except BaseException:
            self.discard(dataset_id)
            raise

    def _ingest(
        self,
        dataset_id: str,
        filename: str,
        size: int,
        checksum: str,
        name: str | None,
        encoding: str | None,
        kind: str,
    ) -> DatasetOut:
        registry = self.resources.registry
        models = [name for name in registry.names() if registry.get(name).kind == "eclo"]  # accident files
        if kind not in (AUTO, TABLE, *models):
            allowed = ", ".join([AUTO, TABLE, *models])
            raise InvalidRequest(f"kind must be one of {allowed}; got {kind[:40]!r}", details=[{"field": "kind"}])
        model_name = None if kind == TABLE else (DEFAULT_MODEL if kind == AUTO else kind)
        if model_name is not None and model_name not in models:
            model_name = None  # no default model served: every upload is a table
        checked = self.checker.check(dataset_id, encoding, model_name, kind)
        if checked.refusal is not None:
            raise InvalidRequest(checked.refusal, details=[{"field": "file"}])
        rows, valid = checked.rows, checked.valid
        if rows == 0:
            raise InvalidRequest("the file has a header but no data rows", details=[{"field": "file"}])
        if valid == 0:
            raise InvalidRequest(
                f"none of the {rows} rows is valid for model {model_name!r}; the first problems are listed",
                details=checked.first_problems,
            )
        fields = {
            "id": dataset_id,
            "name": (name or filename or dataset_id)[:200],
            "filename": (filename or "upload.csv")[:300],
            "kind": TABLE if checked.kind == TABLE else model_name,  # the registry's name, as it will score it
            "model_name": None if checked.kind == TABLE else model_name,
            "layout": checked.layout,
            "encoding": checked.encoding,
            "columns": checked.columns,
            "rows": rows,
            "valid_rows": valid,
            "problems": checked.problems,
            "has_outcomes": checked.has_outcomes,
            "size_bytes": size,
            "checksum": checksum,
            "uploaded_at": self.clock(),
        }
        try:
            with session_scope(self.resources.sessions) as session:
                dataset = records.insert_dataset(session, **fields)
                session.flush()
                out = DatasetOut.model_validate(dataset)
        except SQLAlchemyError as exc:
            raise DependencyUnavailable("database", "cannot record the dataset") from exc
        log.info("dataset %s stored: %d rows, %d valid, %s layout, %s", dataset_id, rows, valid, checked.layout,
                 checked.encoding)  # fmt: skip
        return out

    # Reading and deleting

    def _dataset(self, session: Any, dataset_id: str) -> Dataset:
        dataset = records.get_dataset(session, dataset_id=dataset_id) if _plausible_id(dataset_id) else None
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r}")
        return dataset

    def list(self, page: int, size: int) -> Page[DatasetOut]:
        with self._session() as session:
            items, total = records.list_datasets(session, page=page, size=size)
            return Page[DatasetOut].build(
                items=[DatasetOut.model_validate(d) for d in items], total=total, page=page, size=size
            )

    def detail(self, dataset_id: str, page: int = 1, size: int = 50) -> DatasetDetail:
        with self._session() as session:
            dataset = self._dataset(session, dataset_id)
            out = DatasetOut.model_validate(dataset)
        skip, problems = (page - 1) * size, []
        if out.problems > skip:
            for k, problem in enumerate(self.files.iter_report(dataset_id)):
                if k >= skip + size:
                    break
                if k >= skip:
                    problems.append(DatasetProblem(**problem))
        report = Page[DatasetProblem].build(items=problems, total=out.problems, page=page, size=size)
        return DatasetDetail(**out.model_dump(), report=report)

    def delete(self, dataset_id: str) -> None:
        """The dataset's running job is cancelled first, so no worker writes into a folder being removed."""
        with self._session() as session:
            latest_job_id = self._dataset(session, dataset_id).latest_job_id
        if latest_job_id:
            self._cancel(dataset_id, latest_job_id, "the dataset was deleted")
        with self._session() as session:
            records.delete_dataset(session, dataset_id=dataset_id)
            session.commit()
        self.discard(dataset_id)

    # Scoring

    def start_job(self, dataset_id: str, chunk_rows: int | None = None) -> DatasetJobAccepted:
        with self._session() as session:
            dataset = self._dataset(session, dataset_id)
            model_name, total = dataset.model_name, dataset.valid_rows
        if model_name is None:
            raise Conflict(f"dataset {dataset_id} is a table, not a model's input: it is explored, not scored "
                           "(upload an accident file to score it)")  # fmt: skip
        chunk_rows = chunk_rows or self.settings.dataset_chunk_rows
        job_id = uuid.uuid4().hex
        try:
            running = self.jobs.create(job_id, dataset_id, model_name, total, chunk_rows)
        except redis.RedisError as exc:
            raise DependencyUnavailable("redis", "cannot record the job") from exc
        if running is not None:
            raise Conflict(
                f"job {running} is already scoring this dataset; cancel it or wait for it",
                details=[{"job_id": running}],
            )
        chunks = -(-total // chunk_rows)
        job = {"id": job_id, "dataset_id": dataset_id, "model_name": model_name, "status": PENDING, "total": total,
               "done": 0, "chunk_rows": chunk_rows, "created_at": self.clock()}  # fmt: skip
        try:
            with session_scope(self.resources.sessions) as session:
                records.insert_job(session, **job)
        except SQLAlchemyError as exc:
            self.jobs.discard(job_id, dataset_id)
            raise DependencyUnavailable("database", "cannot record the job") from exc
        try:
            for chunk in range(chunks):
                score_chunk.apply_async(args=[job_id, chunk], task_id=f"{job_id}-{chunk}")
        except (OperationalError, redis.RedisError, OSError) as exc:
            self._cancel(dataset_id, job_id, "the broker refused the job's tasks", status=FAILURE)
            raise DependencyUnavailable("redis", "cannot queue the job on the broker") from exc
        log.info("dataset %s: job %s queued, %d rows in %d chunks", dataset_id, job_id, total, chunks)
        return DatasetJobAccepted(
            job_id=job_id,
            dataset_id=dataset_id,
            status="pending",
            total=total,
            chunks=chunks,
            poll_url=f"/api/datasets/{dataset_id}/predictions",
        )

    def job_status(self, dataset_id: str) -> DatasetJobStatus:
        with self._session() as session:
            return self._latest_job(session, self._dataset(session, dataset_id))[0]

    def _latest_job(self, session: Session, dataset: Dataset) -> tuple[DatasetJobStatus, DatasetJob | None]:
        """The dataset's latest job as the poll answers it, and its database row (None when not written yet)."""
        job_id = dataset.latest_job_id
        if job_id is None:
            raise NotFound(f"dataset {dataset.id!r} has not been scored; POST /api/datasets/{dataset.id}/predict")
        stored = records.get_job(session, job_id=job_id)
        return self._status(dataset.id, job_id, stored), stored

    def _status(self, dataset_id: str, job_id: str, stored: DatasetJob | None) -> DatasetJobStatus:
        try:
            record = self.jobs.get(job_id)
        except redis.RedisError:
            record = None
        if record is not None:
            status = _from_record(record)
        elif stored is not None:
            status = DatasetJobStatus(
                job_id=stored.id,
                dataset_id=stored.dataset_id,
                status=stored.status,  # type: ignore[arg-type]
                progress=BatchProgress(done=stored.done, total=stored.total),
                model=stored.model_name,
                created_at=stored.created_at,
                started_at=stored.started_at,
                finished_at=stored.finished_at,
                error=stored.error,
                evaluation=stored.evaluation,
            )
        else:
            raise NotFound(f"no job {job_id!r}")
        if status.status in (SUCCESS, PARTIAL):
            status.results_url = f"/api/datasets/{dataset_id}/predictions.csv"
        return status

    def cancel_job(self, dataset_id: str) -> DatasetJobStatus:
        status = self.job_status(dataset_id)
        if status.status not in (PENDING, "processing"):
            raise Conflict(f"job {status.job_id} is {status.status}; only a pending or running job can be cancelled")
        self._cancel(dataset_id, status.job_id, "cancelled by a client")
        return self.job_status(dataset_id)

    def _cancel(self, dataset_id: str, job_id: str, reason: str, status: str = CANCELLED) -> None:
        try:
            changed = self.jobs.finish(job_id, dataset_id, status, reason)
        except redis.RedisError as exc:
            raise DependencyUnavailable("redis", "cannot cancel the job") from exc
        if changed:
            with self._session() as session:
                records.update_job(session, job_id=job_id, status=status, error=reason, finished_at=self.clock())
                session.commit()

    # Results

    def _finished_job(self, dataset_id: str) -> tuple[Dataset, DatasetJobStatus, int]:
        """The dataset, its latest job (which must have succeeded) and the job's chunk count, in one session."""
        with self._session() as session:
            dataset = self._dataset(session, dataset_id)
            status, stored = self._latest_job(session, dataset)
            chunk_rows = None if stored is None else stored.chunk_rows
            session.expunge(dataset)
        if status.status not in (SUCCESS, PARTIAL):
            raise Conflict(
                f"job {status.job_id} is {status.status} ({status.progress.done} of {status.progress.total} rows); "
                "results are served once it succeeds",
                details=[{"job_id": status.job_id, "status": status.status}],
            )
        if chunk_rows is None:
            raise NotFound(f"no job {status.job_id!r}")
        return dataset, status, -(-status.progress.total // chunk_rows)

    def result_rows(self, dataset_id: str) -> tuple[list[str], Iterator[list[Any]]]:
        """The file's header and columns plus RESULT_COLUMNS, and every row in the file's order (rows that were
        not scored keep their cells, with their problems in `error`)."""
        dataset, status, chunks = self._finished_job(dataset_id)
        fmt = FileFormat(dataset.encoding, dataset.layout, list(dataset.columns), dataset.has_outcomes)
        problems: dict[int, list[str]] = {}
        for problem in self.files.iter_report(dataset_id):
            where = f"{problem['column']}: " if problem["column"] else ""
            problems.setdefault(problem["row"] - 1, []).append(where + problem["problem"])
        results = self.files.iter_results(dataset_id, status.job_id, chunks)

        def rows() -> Iterator[list[Any]]:
            upcoming = next(results, None)
            with self.files.storage.open_read(self.files.source(dataset_id)) as handle:
                for index, cells in enumerate(data_rows(handle, fmt)):
                    cells = (cells + [""] * len(fmt.columns))[: len(fmt.columns)]
                    if upcoming is not None and upcoming[0] == index:
                        outcome = upcoming[1]
                        upcoming = next(results, None)
                        if "error" in outcome:
                            yield [*cells, None, None, None, None, outcome["error"]]
                        else:
                            yield [*cells, outcome.get("eclo"), outcome.get("p_severe"), outcome.get("risk_level"),
                                   outcome.get("model_version"), None]  # fmt: skip
                    else:
                        yield [*cells, None, None, None, None, "; ".join(problems.get(index, ["not scored"]))]

        return [*fmt.columns, *RESULT_COLUMNS], rows()

    def results_csv(self, dataset_id: str) -> Iterator[bytes]:
        """UTF-8 with a BOM, written a thousand rows at a time (`csv_chunks`); a missing result fails here, before
        the answer starts."""
        header, rows = self.result_rows(dataset_id)
        return csv_chunks(header, rows)

    def results_parquet(self, dataset_id: str) -> bytes:
        header, rows = self.result_rows(dataset_id)
        frame = pd.DataFrame(list(rows), columns=header)
        frame["predicted_eclo"] = frame["predicted_eclo"].astype("float64")
        frame["p_severe"] = frame["p_severe"].astype("float64")
        out = io.BytesIO()
        frame.to_parquet(out, index=False)
        return out.getvalue()

    # Sharing

    def share(self, dataset_id: str, days: float | None = None) -> ShareCreated:
        token = secrets.token_urlsafe(32)  # 256 bits
        expires_at = self.clock() + timedelta(days=days or self.settings.dataset_share_days)
        with self._session() as session:
            self._dataset(session, dataset_id)
            records.insert_share(
                session, token_hash=_hash(token), dataset_id=dataset_id, created_at=self.clock(), expires_at=expires_at
            )
            session.commit()
        return ShareCreated(token=token, url=f"/api/shared/{token}", expires_at=expires_at)

    def revoke(self, token: str) -> None:
        with self._session() as session:
            share = records.get_share(session, token_hash=_hash(token)) if len(token) <= 100 else None
            if share is None or share.revoked_at is not None:
                raise NotFound("no such share link")
            share.revoked_at = self.clock()
            session.commit()

    def shared_dataset_id(self, token: str) -> str:
        """The dataset a live token opens: unknown or revoked -> 404, expired -> 410."""
        with self._session() as session:
            share = records.get_share(session, token_hash=_hash(token)) if len(token) <= 100 else None
            if share is None or share.revoked_at is not None:
                raise NotFound("no such share link (it may have been revoked)")
            if share.expires_at <= self.clock():
                raise Gone(f"this share link expired at {share.expires_at.isoformat()}")
            return share.dataset_id

    def shared(self, token: str, page: int = 1, size: int = 50) -> SharedDataset:
        dataset_id = self.shared_dataset_id(token)
        detail = self.detail(dataset_id, page, size)
        try:
            job = self.job_status(dataset_id) if detail.latest_job_id else None
        except NotFound:
            job = None
        url = f"/api/shared/{token}/predictions.csv" if job is not None and job.results_url else None
        if job is not None:
            job.results_url = url
        return SharedDataset(dataset=detail, job=job, predictions_url=url)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self.resources.sessions() as session:
                yield session
        except SQLAlchemyError as exc:
            raise DependencyUnavailable("database", "cannot read or write the dataset records") from exc


def _from_record(record: JobRecord) -> DatasetJobStatus:
    return DatasetJobStatus(
        job_id=record.job_id,
        dataset_id=record.dataset_id,
        status=record.status,  # type: ignore[arg-type]
        progress=BatchProgress(done=min(record.done, record.total), total=record.total),
        model=record.model,
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        started_at=from_epoch(record.started_at),
        finished_at=from_epoch(record.finished_at),
        error=record.error,
        evaluation=record.evaluation,
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _plausible_id(dataset_id: str) -> bool:
    return len(dataset_id) == _ID_LENGTH and all(c in "0123456789abcdef" for c in dataset_id)
