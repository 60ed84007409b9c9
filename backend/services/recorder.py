"""Background writer of records: the answer never waits for the database, nor fails because of it.

Prediction records are buffered and bulk-inserted every `flush_interval` seconds by one thread; other writes
(batch jobs) are queued as functions of a session. A failure is logged and counted (visible in /health);
when the buffer is full the oldest records are dropped and counted.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from backend.db.crud import insert_predictions
from backend.db.session import session_scope

log = logging.getLogger(__name__)

Write = Callable[[Session], Any]


class Recorder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        max_buffer: int = 20_000,
        flush_interval: float = 0.2,
        max_batch: int = 1000,
    ) -> None:
        self.sessions = sessions
        self.max_buffer = max_buffer
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._predictions: deque[dict[str, Any]] = deque()
        self._writes: deque[Write] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def record_prediction(self, row: dict[str, Any]) -> None:
        if len(self._predictions) >= self.max_buffer:
            self._predictions.popleft()
            self.dropped += 1
        self._predictions.append(row)

    def submit(self, write: Write) -> None:
        if len(self._writes) >= self.max_buffer:
            self._writes.popleft()
            self.dropped += 1
        self._writes.append(write)
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write everything buffered so far."""
        with self._flush_lock:
            while self._predictions:
                batch = [self._predictions.popleft() for _ in range(min(self.max_batch, len(self._predictions)))]
                self._attempt(lambda session, rows=batch: insert_predictions(session, rows=rows), len(batch))
            while self._writes:
                self._attempt(self._writes.popleft(), 1)

    def _attempt(self, write: Write, count: int) -> None:
        try:
            with session_scope(self.sessions) as session:
                write(session)
            self.written += count
        except Exception as exc:  # any database failure: counted and logged, never raised to a client
            self.failed += count
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            log.warning("could not write %d record(s): %s", count, self.last_error)

    def stop(self, timeout: float = 10) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def stats(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "failed": self.failed,
            "dropped": self.dropped,
            "queued": len(self._predictions) + len(self._writes),
            "last_error": self.last_error,
        }
