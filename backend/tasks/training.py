"""The training task `models.train`, on the workers' training queue (a long training never delays a batch).

At most once: a worker killed mid-training does not hand the job to another (the message is acknowledged when
it starts); the job's heartbeat stops, and the API fails it after TRAINING_STALE_SECONDS. The version is written
into a local partial folder and published to the file storage only when whole (its metadata last): a failure, a
cancel or a kill leaves no version, and every API and worker host can serve it once published.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select

from backend.core.config import get_settings
from backend.db import lifecycle as records
from backend.db.models import Dataset, Sensor, TrafficReading
from backend.db.session import session_scope
from backend.ml import drift
from backend.ml.errors import DataFileError
from backend.ml.registry import CHAMPION
from backend.tasks.batches import BatchTask
from backend.tasks.celery_app import celery_app

if TYPE_CHECKING:
    from backend.wiring import Resources

log = logging.getLogger(__name__)

MAX_LOG_LINES = 300
DRIFT_SAMPLE = 5000
# Log lines a training of each kind writes, about: the progress bar's scale.
EXPECTED_LINES = {"eclo": 40, "congestion": 12}


class TrainingCancelled(Exception):
    pass


_settings = get_settings()


@celery_app.task(
    name="models.train",
    bind=True,
    base=BatchTask,
    acks_late=False,
    time_limit=_settings.training_time_limit_seconds,
    soft_time_limit=max(1, _settings.training_time_limit_seconds - 5),
)
def train_version(self: BatchTask, job_id: str) -> dict[str, Any]:
    assert self.resources is not None, "worker resources are opened by worker_process_init"
    return run_training(self.resources, job_id)


class JobLog:
    """The job's log lines, stage and progress in its record; raises TrainingCancelled once a cancel is asked."""

    def __init__(self, resources: Resources, job_id: str, kind: str) -> None:
        self.resources = resources
        self.job_id = job_id
        self.lines: list[str] = []
        self.expected = EXPECTED_LINES.get(kind, 20)

    def __call__(self, line: str) -> None:
        log.info("training %s: %s", self.job_id, line)
        self.lines = (self.lines + [line])[-MAX_LOG_LINES:]
        fraction = 0.1 + 0.75 * min(1.0, len(self.lines) / self.expected)
        self.update(log=self.lines, fraction=round(fraction, 3))

    def stage(self, stage: str, fraction: float) -> None:
        self.update(stage=stage, fraction=fraction)

    def update(self, **fields: Any) -> None:
        with session_scope(self.resources.sessions) as session:
            job = records.get_training_job(session, job_id=self.job_id)
            if job is not None and job.cancel_requested:
                raise TrainingCancelled()
            records.update_training_job(session, job_id=self.job_id, heartbeat_at=datetime.now(UTC), **fields)


class Heartbeat:
    """Beats the job's record while it runs, so that a killed worker's job is seen as stopped."""

    def __init__(self, resources: Resources, job_id: str, every: float) -> None:
        self.resources, self.job_id, self.every = resources, job_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"training-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with session_scope(self.resources.sessions) as session:
                    records.update_training_job(session, job_id=self.job_id, only_if_status=("running",),
                                                heartbeat_at=datetime.now(UTC))  # fmt: skip
            except Exception as exc:
                log.warning("training %s: heartbeat not written (%s)", self.job_id, type(exc).__name__)


def run_training(resources: Resources, job_id: str) -> dict[str, Any]:
    """The body of `models.train`, callable without Celery (tests call it directly)."""
    settings = resources.settings
    now = datetime.now(UTC)
    with session_scope(resources.sessions) as session:
        job = records.get_training_job(session, job_id=job_id)
        if job is None:
            return {"job_id": job_id, "status": "missing"}
        started = records.update_training_job(session, job_id=job_id, only_if_status=("pending",), status="running",
                                              started_at=now, heartbeat_at=now, stage="reading the data",
                                              fraction=0.02)  # fmt: skip
        name, kind, request = job.model_name, job.kind, dict(job.request)
    if not started:
        return {"job_id": job_id, "status": "skipped"}
    versions = resources.registry.versions
    assert versions is not None
    job_log = JobLog(resources, job_id, kind)
    # What trainings killed on this host left (none can run past the hard time limit).
    versions.clean_partials(name, older_than_seconds=settings.training_time_limit_seconds + 60)
    partial = versions.partial_folder(name, job_id)
    try:
        with Heartbeat(resources, job_id, max(0.5, settings.training_stale_seconds / 5)):
            champion = resources.registry.get(name, _champion_version(resources, name))
            job_log(f"the champion is version {champion.version}")
            if kind == "eclo":
                _train_eclo(resources, name, request, champion, partial, job_log)
            else:
                _train_congestion(resources, name, request, champion, partial, job_log)
            job_log.stage("publishing the version", 0.97)
            version = versions.publish(name, partial)
        # Whole and in place: a cancel asked now comes too late (no cancel check on this last line).
        done = [*job_log.lines, f"version {version} is ready; promote it with PUT /api/models/{name}/aliases/champion"]
        _finish(resources, job_id, "success", version=version, stage="done", fraction=1.0, log=done[-MAX_LOG_LINES:])
        return {"job_id": job_id, "status": "success", "version": version}
    except TrainingCancelled:
        versions.discard(partial)
        _finish(resources, job_id, "cancelled", error="cancelled", stage="cancelled")
        return {"job_id": job_id, "status": "cancelled"}
    except SoftTimeLimitExceeded:
        versions.discard(partial)
        limit = f"TRAINING_TIME_LIMIT_SECONDS ({settings.training_time_limit_seconds} s)"
        _finish(resources, job_id, "failure", stage="failed", error=f"took longer than {limit}")
        raise
    except DataFileError as exc:
        versions.discard(partial)
        _finish(resources, job_id, "failure", error=str(exc), stage="failed")
        return {"job_id": job_id, "status": "failure", "error": str(exc)}
    except Exception as exc:
        versions.discard(partial)
        log.exception("training %s failed", job_id)
        _finish(resources, job_id, "failure", error=f"{type(exc).__name__}: {exc}", stage="failed")
        raise


def _finish(resources: Resources, job_id: str, status: str, **fields: Any) -> None:
    with session_scope(resources.sessions) as session:
        records.update_training_job(session, job_id=job_id, only_if_status=("running",), status=status,
                                    finished_at=datetime.now(UTC), **fields)  # fmt: skip


def _champion_version(resources: Resources, name: str) -> str | None:
    with session_scope(resources.sessions) as session:
        return records.read_aliases(session).get(name, {}).get(CHAMPION)


def _train_eclo(resources: Resources, name: str, request: dict[str, Any], champion: Any, out: Path,
                job_log: JobLog) -> None:  # fmt: skip
    from backend.ml.eclo.dacon import LabelledRows, ParseReport
    from backend.ml.eclo.versions import load_dataset_rows, train_eclo_version

    parts: list[LabelledRows] = []
    names: list[str] = []
    with session_scope(resources.sessions) as session:
        datasets = {d.id: d for d in session.scalars(select(Dataset).where(Dataset.id.in_(request["dataset_ids"])))}
    files = resources.dataset_files
    for dataset_id in request["dataset_ids"]:
        dataset = datasets.get(dataset_id)
        if dataset is None:
            raise DataFileError(f"dataset {dataset_id} was deleted before the training read it")
        path = files.storage.local_path(files.source(dataset_id))
        part = load_dataset_rows(path, dataset.encoding)
        job_log(f"dataset {dataset_id} ({dataset.filename}): {len(part.rows)} usable rows")
        parts.append(part)
        names.append(dataset.filename)
    report = ParseReport(total_rows=sum(p.report.total_rows for p in parts))
    for part in parts:
        report.skipped += part.report.skipped
        report.reasons.update(part.report.reasons)
    data = LabelledRows([r for p in parts for r in p.rows], np.concatenate([p.eclo for p in parts]),
                        np.concatenate([p.severe for p in parts]), report)  # fmt: skip
    job_log.stage("training", 0.1)
    metadata = train_eclo_version(data, holdout_from_year=int(request["holdout_from_year"]), champion=champion,
                                  out=out, data_source=", ".join(names)[:300],
                                  training_data={"dataset_ids": request["dataset_ids"]}, log=job_log,
                                  seed=int(request.get("seed", 42)))  # fmt: skip
    job_log.stage("keeping a drift reference", 0.92)
    _add_drift_reference(out, metadata, "eclo", _eclo_bodies(data, int(request.get("seed", 42))))


def _eclo_bodies(data: Any, seed: int) -> list[dict[str, Any]]:
    """A sample of the training rows as request bodies (the fields single predictions are recorded with)."""
    rng = np.random.default_rng(seed)
    index = rng.choice(len(data.rows), size=min(DRIFT_SAMPLE, len(data.rows)), replace=False)
    bodies = []
    for i in sorted(index):
        row = data.rows[i]
        bodies.append({"weather": row.weather, "road_surface": row.road_surface, "road_type": row.road_type,
                       "accident_type": row.accident_type, "district": row.district, "day_of_week": row.day_of_week,
                       "accident_year": row.year, "accident_month": row.month, "accident_day": row.day,
                       "accident_hour": row.hour})  # fmt: skip
    return bodies


def _add_drift_reference(out: Path, metadata: dict[str, Any], kind: str, bodies: list[dict[str, Any]]) -> None:
    from backend.ml.artifacts import METADATA_FILE, write_json_atomic
    from backend.ml.kinds import MODEL_KINDS

    model = MODEL_KINDS[kind](out)
    scored = [
        (b, o.to_dict()) for b, o in zip(bodies, model.predict_many(bodies), strict=True) if hasattr(o, "to_dict")
    ]
    metadata["drift_reference"] = drift.reference_for(kind, [b for b, _ in scored], [o for _, o in scored])
    write_json_atomic(out / METADATA_FILE, metadata)


def _train_congestion(resources: Resources, name: str, request: dict[str, Any], champion: Any, out: Path,
                      job_log: JobLog) -> None:  # fmt: skip
    from backend.ml.congestion.loaders import neighbours_by_distance
    from backend.ml.congestion.versions import speeds_frame, train_congestion_version

    since, until = datetime.fromisoformat(request["since"]), datetime.fromisoformat(request["until"])
    with session_scope(resources.sessions) as session:
        readings = session.execute(
            select(TrafficReading.sensor_id, TrafficReading.timestamp, TrafficReading.speed_mph,
                   TrafficReading.utc_offset_minutes)
            .where(TrafficReading.timestamp >= since, TrafficReading.timestamp < until)
        ).all()  # fmt: skip
        registered = session.scalars(select(Sensor)).all()
    job_log(f"{len(readings)} stored readings from {since.isoformat()} to {until.isoformat()}")
    # The model learns the clock of the place (its profiles are by local weekday and time of day, as serving reads
    # them): the grid is on the readings' own offset.
    offset = timedelta(minutes=Counter(int(r[3] or 0) for r in readings).most_common(1)[0][0] if readings else 0)
    local = ((r[0], r[1].astimezone(UTC).replace(tzinfo=None) + offset, r[2]) for r in readings)
    frame = speeds_frame(local, since.astimezone(UTC).replace(tzinfo=None) + offset,
                         until.astimezone(UTC).replace(tzinfo=None) + offset - timedelta(seconds=1))  # fmt: skip
    sensors = pd.DataFrame(
        [
            {"sensor_id": s.sensor_id, "latitude": s.latitude, "longitude": s.longitude}
            for s in registered
            if s.sensor_id in frame.columns
        ]  # fmt: skip
    )
    if sensors.empty:
        raise DataFileError(f"no readings of a registered sensor between {since.isoformat()} and {until.isoformat()}")
    frame = frame[list(sensors.sensor_id)]
    ids = set(frame.columns)
    graph = dict(champion.metadata.get("neighbours") or {})
    nearest = neighbours_by_distance(sensors.reset_index(drop=True))
    neighbours = {s: [n for n in graph[s] if n in ids] if graph.get(s) else nearest[s] for s in frame.columns}
    job_log.stage("training", 0.1)
    metadata = train_congestion_version(frame, sensors, neighbours, champion=champion, out=out,
                                        data_source=f"stored readings {since.isoformat()} to {until.isoformat()}",
                                        training_data={"since": request["since"], "until": request["until"]},
                                        log=job_log, seed=int(request.get("seed", 42)))  # fmt: skip
    job_log.stage("keeping a drift reference", 0.92)
    _add_drift_reference(out, metadata, "congestion", _congestion_bodies(frame, int(request.get("seed", 42))))


def _congestion_bodies(frame: pd.DataFrame, seed: int) -> list[dict[str, Any]]:
    """A sample of the frame's one-hour windows as request bodies with their readings."""
    rng = np.random.default_rng(seed)
    values = frame.to_numpy()
    bodies: list[dict[str, Any]] = []
    if len(frame) < 12:
        return bodies
    for _ in range(min(DRIFT_SAMPLE, 2000)):
        column, end = int(rng.integers(0, values.shape[1])), int(rng.integers(11, len(frame)))
        window = [{"timestamp": frame.index[i].isoformat(), "speed_mph": float(values[i, column])}
                  for i in range(end - 11, end + 1) if values[i, column] > 0]  # fmt: skip
        if len(window) >= 3:
            bodies.append({"sensor_id": str(frame.columns[column]), "readings": window, "neighbour_readings": {}})
    return bodies
