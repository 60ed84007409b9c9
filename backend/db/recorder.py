"""Background writer of records: the answer never waits for the database, nor fails because of it, and no
record it accepted is lost while the database is away.

Prediction records are buffered and bulk-inserted every `flush_interval` seconds by one thread; other records
(a batch's job at submission) are queued beside them. A write the database refuses goes to a local append-only
spill file (`SpillFile`), whatever the reason; while the file holds records, new ones join it (their order is
kept) and the file is replayed, with a growing pause between tries, until the database takes it. The file is
bounded (`max_bytes`): past it records are dropped and counted. Workers spill into the same file when they
cannot record a batch; whichever process finds the database back replays it.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from backend.db import datasets
from backend.db.models import utcnow
from backend.db.records import insert_batch_job_if_absent, insert_predictions, save_batch_rows, upsert_batch_job
from backend.db.session import session_scope

log = logging.getLogger(__name__)

Entry = tuple[str, Any]  # (kind, payload): data, so that it can wait on disk


def _write_batch_state(session: Session, payload: dict[str, Any]) -> None:
    upsert_batch_job(session, batch_id=payload["batch_id"], **payload["fields"])
    if payload.get("rows") is not None:
        save_batch_rows(session, batch_id=payload["batch_id"], rows=payload["rows"])


WRITERS: dict[str, Callable[[Session, Any], None]] = {
    "predictions": lambda session, rows: insert_predictions(session, rows=rows),
    "batch_job": lambda session, job: insert_batch_job_if_absent(session, **job),
    "batch_state": _write_batch_state,
    "dataset_job": lambda session, job: datasets.update_job(session, **job),
}


def write_entries(session: Session, entries: list[Entry]) -> None:
    for kind, payload in entries:
        WRITERS[kind](session, payload)


def _write(sessions: sessionmaker[Session], entries: list[Entry]) -> None:
    """The entries in one transaction of their own."""
    with session_scope(sessions) as session:
        write_entries(session, entries)


def _summary(exc: Exception) -> str:
    """A database error's kind and first line (its SQL and parameters are left out)."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"cannot spill a {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _count(entry: Entry) -> int:
    kind, payload = entry
    return len(payload) if kind == "predictions" else 1


class SpillFile:
    """JSON lines of entries the database refused, in the order they came; shared by the processes of one data
    folder. Appends take a short advisory lock; a replay moves the file aside under that lock and writes it to
    the database without holding it, so a worker recording a batch never waits on a long replay."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.aside = self.path.with_name(self.path.name + ".replaying")
        self.replay_lock = self.path.with_name(self.path.name + ".lock")
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """The current file, locked: a file moved aside while this waited for its lock is opened again."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def size(self) -> int:
        total = 0
        for path in (self.path, self.aside):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                pass
        return total

    def append(self, entries: list[Entry]) -> bool:
        """Whether the entries were written (False: the file is full, they are lost)."""
        data = b"".join(
            orjson.dumps(list(entry), default=_encode, option=orjson.OPT_PASSTHROUGH_DATETIME) + b"\n"
            for entry in entries
        )
        with self._locked() as fd:
            if self.size() + len(data) > self.max_bytes:
                return False
            os.write(fd, data)
            os.fsync(fd)
        return True

    def replay(self, write: Callable[[list[Entry]], None]) -> int:
        """Hand the spilled entries, oldest first, to `write` (which raises while the database is still away:
        they stay on disk), then forget them; returns the records written. One process replays at a time."""
        guard = os.open(self.replay_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another process is replaying
            if not self.aside.exists():  # else a replay that failed left it: its entries are the oldest
                with self._locked() as fd:
                    if os.fstat(fd).st_size == 0:
                        return 0
                    os.rename(self.path, self.aside)
            with self.aside.open("rb") as handle:
                entries = [tuple(_decode(orjson.loads(line))) for line in handle if line.strip()]
            if entries:
                write(entries)  # type: ignore[arg-type]
            self.aside.unlink()
            return sum(_count(e) for e in entries)  # type: ignore[arg-type]
        finally:
            os.close(guard)


class Recorder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        spill: SpillFile,
        max_buffer: int = 20_000,
        flush_interval: float = 0.01,
        max_batch: int = 1000,
        max_retry_seconds: float = 10.0,
    ) -> None:
        """`flush_interval`: short flushes keep the GIL-holding part of each below the time a waiting request
        notices: a shorter interval lowers a single prediction's p99 at one connection, for a little throughput
        (more, smaller transactions)."""
        self.sessions = sessions
        self.spill = spill
        self.max_buffer = max_buffer
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_retry_seconds = max_retry_seconds
        self._predictions: deque[dict[str, Any]] = deque()
        self._others: deque[Entry] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._retry_after = 0.0
        self._pause = flush_interval
        # record ids: a random half for this recorder, then a counter (a uuid4 a record cost a getrandom call)
        self._id_prefix = os.urandom(8).hex()
        self._id_counter = itertools.count(1)
        self.written = 0
        self.failed = 0
        self.spilled = 0
        self.dropped = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def record_prediction(self, row: dict[str, Any]) -> None:
        row["record_id"] = f"{self._id_prefix}{next(self._id_counter):016x}"
        row.setdefault("created_at", utcnow())  # part of the record's key: a retried write must carry the same
        if len(self._predictions) >= self.max_buffer:  # the writer thread is far behind: off to the spill file
            count = min(self.max_batch, len(self._predictions))
            self._keep([("predictions", [self._predictions.popleft() for _ in range(count)])])
        self._predictions.append(row)

    def record(self, kind: str, payload: Any) -> None:
        """Any other record: `kind` names its writer in WRITERS."""
        self._others.append((kind, payload))
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()

    def _pending(self) -> list[Entry]:
        entries: list[Entry] = []
        while self._predictions:
            entries.append(("predictions", [self._predictions.popleft()
                                             for _ in range(min(self.max_batch, len(self._predictions)))]))  # fmt: skip
        while self._others:
            entries.append(self._others.popleft())
        return entries

    def flush(self) -> None:
        """Write everything buffered so far; what the database refuses waits in the spill file."""
        with self._flush_lock:
            entries = self._pending()
            if self.spill.size():
                if time.monotonic() < self._retry_after or not self._replay():
                    self._keep(entries)  # behind the spilled ones, in order
                    return
            for entry in entries:
                try:
                    _write(self.sessions, [entry])
                    self.written += _count(entry)
                except Exception as exc:  # any database failure: kept on disk, never raised to a client
                    self._failed(exc, _count(entry))
                    self._keep([entry])

    def _replay(self) -> bool:
        try:
            replayed = self.spill.replay(partial(_write, self.sessions))
        except Exception as exc:
            self._failed(exc, 0)
            self._pause = min(self._pause * 2, self.max_retry_seconds)
            self._retry_after = time.monotonic() + self._pause
            return False
        self.written += replayed
        self._pause = self.flush_interval
        if replayed:
            log.info("replayed %d spilled record(s) into the database", replayed)
        return True

    def _keep(self, entries: list[Entry]) -> None:
        if not entries:
            return
        count = sum(_count(e) for e in entries)
        if self.spill.append(entries):
            self.spilled += count
        else:
            self.dropped += count
            log.error("spill file %s is full (%d bytes): %d record(s) dropped", self.spill.path,
                      self.spill.max_bytes, count)  # fmt: skip

    def _failed(self, exc: Exception, count: int) -> None:
        self.failed += count
        self.last_error = _summary(exc)
        log.warning("could not write %d record(s): %s", count, self.last_error)

    def stop(self, timeout: float = 10) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._retry_after = 0.0
        self.flush()

    def stats(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "failed": self.failed,
            "spilled": self.spilled,
            "dropped": self.dropped,
            "queued": len(self._predictions) + len(self._others),
            "spill_bytes": self.spill.size(),
            "last_error": self.last_error,
        }


def record_or_spill(sessions: sessionmaker[Session], spill: SpillFile, kind: str, payload: Any) -> None:
    """One record written now (a worker's batch state), or, when older records wait in the spill file (they go
    first) or the database refuses it, appended to them."""
    entry: Entry = (kind, payload)
    if not spill.size():
        try:
            _write(sessions, [entry])
            return
        except Exception as exc:  # the database is away: the record waits on disk
            log.warning("could not write a %s record, spilled: %s", kind, _summary(exc))
    if not spill.append([entry]):
        log.error("spill file %s is full: a %s record dropped", spill.path, kind)
