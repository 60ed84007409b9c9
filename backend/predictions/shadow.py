"""Shadow scoring: with a challenger set, each single prediction the champion answered is scored again by the
challenger on a thread of its own, after the answer is sent, in batches (the model's vectorised `predict_many`,
no explanations), and both figures are recorded side by side. A full queue skips predictions (counted): a
shadow never slows an answer."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from backend.core.metrics import SHADOW_SCORES
from backend.ml.errors import InvalidRow
from backend.ml.registry import ModelRegistry

log = logging.getLogger(__name__)

BATCH = 256


def compared_figures(answer: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """The figure and the level a shadow compares: ECLO's expected ECLO and risk level, congestion's first
    forecast's speed and level; none for other kinds."""
    if "eclo" in answer:
        return float(answer["eclo"]), answer.get("risk_level")
    forecasts = answer.get("forecasts")
    if forecasts:
        return float(forecasts[0]["speed_mph"]), forecasts[0].get("level")
    return None, None


class ShadowScorer:
    def __init__(self, registry: ModelRegistry, write: Callable[[Sequence[dict[str, Any]]], None], size: int) -> None:
        self.registry = registry
        self.write = write
        self.size = size
        self._queue: deque[tuple[str, str, Any, float | None, str | None, datetime]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, name: str, champion_version: str, row: Any, answer: Mapping[str, Any]) -> None:
        """Called on the answer's path: O(1), never blocks."""
        if self.registry.challenger(name) is None:
            return
        if len(self._queue) >= self.size:
            SHADOW_SCORES.labels(name, "skipped").inc()
            return
        value, level = compared_figures(answer)
        self._queue.append((name, champion_version, row, value, level, datetime.now(UTC)))
        if len(self._queue) >= BATCH:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            self.drain()

    def drain(self) -> int:
        """Score what is queued (tests call it to wait for the shadow); how many were scored."""
        scored = 0
        while self._queue:
            items = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            scored += self._score(items)
        return scored

    def _score(self, items: list[tuple[str, str, Any, float | None, str | None, datetime]]) -> int:
        by_name: dict[str, list[tuple[str, str, Any, float | None, str | None, datetime]]] = {}
        for item in items:
            by_name.setdefault(item[0], []).append(item)
        records: list[dict[str, Any]] = []
        for name, group in by_name.items():
            challenger = self.registry.challenger(name)
            if challenger is None:
                SHADOW_SCORES.labels(name, "skipped").inc(len(group))
                continue
            try:
                outcomes = challenger.predict_many([item[2] for item in group])
            except Exception:
                log.exception("shadow scoring of %s by %s failed", name, challenger.version)
                SHADOW_SCORES.labels(name, "failed").inc(len(group))
                continue
            for (_, champion_version, _, value, level, at), outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, InvalidRow):  # the challenger refuses what the champion answered
                    shadow_value, shadow_level = None, "refused"
                else:
                    shadow_value, shadow_level = compared_figures(outcome.to_dict())
                records.append({"created_at": at, "model_name": name, "champion_version": champion_version,
                                "challenger_version": challenger.version, "champion_value": value,
                                "challenger_value": shadow_value, "champion_level": level,
                                "challenger_level": shadow_level})  # fmt: skip
            SHADOW_SCORES.labels(name, "scored").inc(len(group))
        if records:
            try:
                self.write(records)
            except Exception as exc:  # the database is down: shadow figures are a sample, not a record owed
                log.warning("shadow scores not written (%s): %d dropped", type(exc).__name__, len(records))
        return len(records)
