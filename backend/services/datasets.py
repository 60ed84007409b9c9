"""Datasets: an upload checked row by row against the model and kept as files, its scoring as one job of
chunks spread over the workers (backend.tasks.datasets), its results in the file's order, and share links."""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import redis
from kombu.exceptions import OperationalError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from backend.core.csv_stream import csv_chunks
from backend.core.errors import Conflict, DependencyUnavailable, Gone, InvalidRequest, NotFound, ServiceError
from backend.db import datasets as records
from backend.db.models import Dataset, DatasetJob, ShareToken
from backend.db.session import guarded_session, session_scope
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
# A Parquet row group, what the export holds in memory at once whatever the dataset's size, ends at so many cells
# (about 18,000 rows of a Dacon file's 28 columns) or so many characters of the file's cells, whichever comes first.
PARQUET_GROUP_CELLS = 500_000
PARQUET_GROUP_CHARS = 16 * 1024 * 1024
# Share links opened without a key: unknown tokens are remembered a while (no query the second time) and each
# client may look up only so many unknown tokens a second (settings to come: SHARE_MISS_*).
SHARE_MISS_CACHE_SIZE = 10_000
SHARE_MISS_TTL_SECONDS = 60.0
SHARE_MISS_RATE = 10.0  # unknown-token lookups a second per client IP
SHARE_MISS_BURST = 20
SHARE_LIVE_TTL_SECONDS = 3600.0  # a token seen live here skips that limit this long (still checked each time)


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
        self.share_lookups = ShareLookups()

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
            version = self.resources.registry.get(model_name).version
            running = self.jobs.create(job_id, dataset_id, model_name, total, chunk_rows, version)
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
        # Results, problems and the file are read side by side, all in file order: nothing is held whole.
        results = self.files.iter_results(dataset_id, status.job_id, chunks)
        reported = self._reported_rows(dataset_id)
        upcoming, problem = next(results, None), next(reported, None)  # a missing file fails here, before a row

        def rows() -> Iterator[list[Any]]:
            nonlocal upcoming, problem
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
                        continue
                    while problem is not None and problem[0] < index:
                        problem = next(reported, None)
                    text = problem[1] if problem is not None and problem[0] == index else "not scored"
                    yield [*cells, None, None, None, None, text]

        return [*fmt.columns, *RESULT_COLUMNS], rows()

    def _reported_rows(self, dataset_id: str) -> Iterator[tuple[int, str]]:
        """Each reported row's index and its problems joined by "; ", in file order (the order the upload check
        writes the report in)."""
        grouped = itertools.groupby(self.files.iter_report(dataset_id), key=lambda problem: problem["row"] - 1)
        for index, problems in grouped:
            yield index, "; ".join(f"{p['column']}: {p['problem']}" if p["column"] else p["problem"] for p in problems)

    def results_csv(self, dataset_id: str) -> Iterator[bytes]:
        """UTF-8 with a BOM, written a thousand rows at a time (`csv_chunks`); a missing result fails here, before
        the answer starts."""
        header, rows = self.result_rows(dataset_id)
        return csv_chunks(header, rows)

    def results_parquet(self, dataset_id: str) -> Iterator[bytes]:
        """Parquet written a row group at a time, each group's bytes handed out as soon as it is written
        (`parquet_chunks`): memory stays flat however many rows (a whole table in memory took gigabytes)."""
        header, rows = self.result_rows(dataset_id)
        return parquet_chunks(header, rows)

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
        self.share_lookups.found(_hash(token))
        return ShareCreated(token=token, url=f"/api/shared/{token}", expires_at=expires_at)

    def revoke(self, token: str) -> None:
        with self._session() as session:
            share = records.get_share(session, token_hash=_hash(token)) if len(token) <= 100 else None
            if share is None or share.revoked_at is not None:
                raise NotFound("no such share link")
            share.revoked_at = self.clock()
            session.commit()
        self.share_lookups.forget(_hash(token))

    def shared_dataset_id(self, token: str, client: str | None = None) -> str:
        """The dataset a live token opens: unknown or revoked -> 404, expired -> 410; a client (its IP) over its
        rate of unknown tokens -> 429 (see ShareLookups)."""
        token_hash, client = _hash(token), client or ""
        lookups = self.share_lookups
        share: ShareToken | None = None
        if len(token) <= 100 and lookups.may_query(token_hash, client):
            with self._session() as session:
                share = records.get_share(session, token_hash=token_hash)
        if share is None or share.revoked_at is not None:
            lookups.missed(token_hash, client)
            raise NotFound("no such share link (it may have been revoked)")
        if share.expires_at <= self.clock():
            raise Gone(f"this share link expired at {share.expires_at.isoformat()}")
        lookups.found(token_hash)
        return share.dataset_id

    def shared(self, token: str, page: int = 1, size: int = 50, client: str | None = None) -> SharedDataset:
        dataset_id = self.shared_dataset_id(token, client)
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
        with guarded_session(self.resources.sessions, "read or write the dataset records") as session:
            yield session


def parquet_chunks(
    header: Sequence[str], rows: Iterable[Sequence[Any]], group_cells: int = 0, group_chars: int = 0
) -> Iterator[bytes]:
    """`rows` as Parquet bytes, each row group's as soon as it is written (groups end at `group_cells` cells or
    `group_chars` characters of the file's own cells: PARQUET_GROUP_CELLS and PARQUET_GROUP_CHARS by default).
    The file's columns and the three texts of the results are large_string (what pandas wrote), predicted_eclo and
    p_severe float64; the rows keep their order."""
    width = len(header) - len(RESULT_COLUMNS)  # the file's own columns; predicted_eclo and p_severe come next
    schema = pa.schema(
        [
            pa.field(name, pa.float64() if i in (width, width + 1) else pa.large_string())
            for i, name in enumerate(header)
        ]
    )
    max_rows = max(1, (group_cells or PARQUET_GROUP_CELLS) // len(header))
    max_chars = group_chars or PARQUET_GROUP_CHARS
    sink = _Drain()
    with pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema) as writer:
        group: list[Sequence[Any]] = []
        chars = 0
        for row in rows:
            group.append(row)
            chars += sum(map(len, row[:width]))
            if len(group) >= max_rows or chars >= max_chars:
                writer.write_table(_table(group, schema))
                group, chars = [], 0
                yield sink.take()
        if group:
            writer.write_table(_table(group, schema))
    yield sink.take()  # the last group and the footer


def _table(rows: list[Sequence[Any]], schema: pa.Schema) -> pa.Table:
    columns = zip(*rows, strict=True)
    return pa.Table.from_arrays([pa.array(cells, type=f.type) for cells, f in zip(columns, schema, strict=True)],
                                schema=schema)  # fmt: skip


class _Drain:
    """A write-only file whose bytes are taken out as they come: ParquetWriter's sink, emptied after each row
    group so no more than one group's bytes wait in it."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        part = bytes(data)
        self._parts.append(part)
        self._position += len(part)
        return len(part)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class TooManyLookups(ServiceError):
    """A client over its rate of unknown share tokens: refused before any query."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            "too many unknown share links from this client; retry later",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class _ExpiringSet:
    """At most `size` keys (the least recently added forgotten first), each kept `ttl` seconds."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float]) -> None:
        self.size, self.ttl, self.clock = size, ttl, clock
        self._until: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            until = self._until.get(key)
            if until is not None and until <= self.clock():
                del self._until[key]
                until = None
            return until is not None

    def add(self, key: str) -> None:
        with self._lock:
            self._until[key] = self.clock() + self.ttl
            self._until.move_to_end(key)
            while len(self._until) > self.size:
                self._until.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._until.pop(key, None)

    def __len__(self) -> int:
        return len(self._until)


class _Buckets:
    """A token bucket per client (`rate` a second, up to `burst`); at most `size` clients are tracked, the least
    recently seen forgotten first (so a flood of addresses costs bounded memory)."""

    def __init__(self, rate: float, burst: int, size: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.size, self.clock = rate, burst, size, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)
        self._lock = threading.Lock()

    def wait(self, client: str, take: bool) -> int:
        """Seconds until `client` has a token (0: it has one, taken when `take`)."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
            wait = 0 if tokens >= 1 else max(1, math.ceil((1 - tokens) / self.rate))
            self._buckets[client] = (tokens - 1 if take and not wait else tokens, now)
            while len(self._buckets) > self.size:
                self._buckets.popitem(last=False)
            return wait


class ShareLookups:
    """What keeps a flood of made-up share tokens off the database. A token hash the database did not know is
    remembered `ttl` seconds, so asking again costs no query; each client may have `rate` unknown lookups a
    second (burst `burst`), and over that a lookup not known to be live is refused before any query. A hash
    seen live here skips the limit, never the database (revoking works at once). In-process: the service
    clears a hash when it creates or revokes its share; another API process could answer a token probed there
    before its creation 404 for `ttl` seconds, which needs the token guessed before it exists (256 bits)."""

    def __init__(
        self,
        size: int = SHARE_MISS_CACHE_SIZE,
        ttl: float = SHARE_MISS_TTL_SECONDS,
        rate: float = SHARE_MISS_RATE,
        burst: int = SHARE_MISS_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.misses = _ExpiringSet(size, ttl, clock)
        self.live = _ExpiringSet(size, SHARE_LIVE_TTL_SECONDS, clock)
        self.buckets = _Buckets(rate, burst, size, clock)

    def may_query(self, token_hash: str, client: str) -> bool:
        """Whether the database should be asked: not for a remembered miss; raises TooManyLookups when the client
        has no unknown lookup left and the hash is not known live."""
        if token_hash in self.misses:
            return False
        if token_hash not in self.live and (wait := self.buckets.wait(client, take=False)):
            raise TooManyLookups(wait)
        return True

    def missed(self, token_hash: str, client: str) -> None:
        """An unknown (or revoked) token: remembered, and charged to `client` (TooManyLookups when over)."""
        self.misses.add(token_hash)
        self.live.discard(token_hash)
        if wait := self.buckets.wait(client, take=True):
            raise TooManyLookups(wait)

    def found(self, token_hash: str) -> None:
        self.misses.discard(token_hash)
        self.live.add(token_hash)

    def forget(self, token_hash: str) -> None:
        self.misses.discard(token_hash)
        self.live.discard(token_hash)


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
