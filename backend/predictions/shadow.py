"""Shadow scoring: with a challenger set, each single prediction the champion answered is scored again by the
challenger, away from the API process. The answer's path only appends the prepared row and the champion's figures
to a bounded queue (O(1); a full queue skips predictions, counted); a thread sends them in batches to the workers
(`models.shadow_score` on the bulk queue), where the challenger scores them through its vectorised `predict_many`
(no explanations) and both figures are recorded side by side. The API's CPU goes to answers, never to shadows."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from backend.core.metrics import SHADOW_SCORES
from backend.ml.errors import InvalidRow
from backend.ml.protocol import PredictiveModel
from backend.ml.registry import ModelRegistry

log = logging.getLogger(__name__)

BATCH = 256
FLUSH_SECONDS = 1.0

# What the workers are sent: (model name, challenger version, [[champion version, row, value, level, at], ...]).
Send = Callable[[str, str, list[list[Any]]], None]


def compared_figures(answer: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """The figure and the level a shadow compares: ECLO's expected ECLO and risk level, congestion's first
    forecast's speed and level; none for other kinds."""
    if "eclo" in answer:
        return float(answer["eclo"]), answer.get("risk_level")
    forecasts = answer.get("forecasts")
    if forecasts:
        return float(forecasts[0]["speed_mph"]), forecasts[0].get("level")
    return None, None


def shadow_records(name: str, challenger: PredictiveModel, items: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The challenger's figures beside the champion's for each sent item (the rows of `shadow_scores`)."""
    outcomes = challenger.predict_many([item[1] for item in items])
    records = []
    for (champion_version, _, value, level, at), outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, InvalidRow):  # the challenger refuses what the champion answered
            shadow_value, shadow_level = None, "refused"
        else:
            shadow_value, shadow_level = compared_figures(outcome.to_dict())
        records.append({"created_at": datetime.fromisoformat(at), "model_name": name,
                        "champion_version": champion_version, "challenger_version": challenger.version,
                        "champion_value": value, "challenger_value": shadow_value, "champion_level": level,
                        "challenger_level": shadow_level})  # fmt: skip
    return records


class ShadowScorer:
    def __init__(self, registry: ModelRegistry, send: Send, size: int, sample_rate: float = 1.0) -> None:
        self.registry = registry
        self.send = send
        self.size = size
        # Every k-th answered prediction is shadowed: a sample is enough to compare two versions, and the
        # challenger's scoring costs CPU somewhere on the machines (SHADOW_SAMPLE_RATE).
        self.every = max(1, round(1 / sample_rate))
        self._seen = 0
        self._queue: deque[tuple[str, str, list[Any]]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, name: str, champion_version: str, row: Any, answer: Mapping[str, Any]) -> None:
        """Called on the answer's path: O(1), never blocks."""
        challenger = self.registry.challenger(name)
        if challenger is None:
            return
        self._seen += 1
        if self._seen % self.every:
            return
        if len(self._queue) >= self.size:
            SHADOW_SCORES.labels(name, "skipped").inc()
            return
        value, level = compared_figures(answer)
        item = [champion_version, row, value, level, datetime.now(UTC).isoformat()]
        self._queue.append((name, challenger.version, item))
        if len(self._queue) >= BATCH:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            self.drain()

    def drain(self) -> int:
        """Send what is queued, in batches per model and challenger; how many were sent."""
        sent = 0
        while self._queue:
            taken = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            groups: dict[tuple[str, str], list[list[Any]]] = {}
            for name, challenger_version, item in taken:
                groups.setdefault((name, challenger_version), []).append(item)
            for (name, challenger_version), items in groups.items():
                try:
                    self.send(name, challenger_version, items)
                    sent += len(items)
                except Exception as exc:  # the broker is down: shadow figures are a sample, not a record owed
                    log.warning("shadow scores not sent (%s): %d skipped", type(exc).__name__, len(items))
                    SHADOW_SCORES.labels(name, "skipped").inc(len(items))
        return sent
