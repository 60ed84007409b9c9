"""The one way in for every prediction: the single routes, the batch task, the dataset chunk task and any later
caller (an MCP tool, a training job's evaluation) ask `Predictions` by model name.

- `predict_one(name, body, caller)`: one request body -> the JSON answer (the kind's answer shape plus `cached`),
  prepared by the kind's serving, answered from the kind's cache or the model, recorded after the answer.
- `prepare_batch(name, items)`: batch items -> the model's rows, read now (congestion: stored readings), and the
  items refused while doing so.
- `predict(name, rows, caller)`: model rows -> one outcome each, in order: the answer shape plus `cached: false`,
  or `{error, details}`. A batch row is that outcome plus its `index`; a dataset result row is the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from backend.core.errors import InvalidRequest, NotFound, TooLarge
from backend.core.metrics import PREDICTIONS, series
from backend.db.recorder import Recorder
from backend.ml.errors import FieldError, InvalidRow
from backend.ml.protocol import PredictiveModel
from backend.ml.registry import ModelRegistry
from backend.predictions.caches import Cache
from backend.predictions.kinds import DirectServing, Serving
from backend.predictions.shadow import ShadowScorer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, for the record: the request's id and the API key's id."""

    request_id: str | None = None
    key_id: str | None = None


class NoCache:
    def key(self, model_version: str, features: bytes) -> None:
        return None

    async def get(self, key: Any) -> bytes | None:
        return None

    def set(self, key: Any, value: bytes) -> None:
        return None


def outcome_of(prediction: Any) -> dict[str, Any]:
    """A row's outcome: its answer (never from a cache), or why it was refused."""
    if isinstance(prediction, InvalidRow):
        return {"error": prediction.summary(), "details": [e.to_dict() for e in prediction.errors]}
    return {**prediction.to_dict(), "cached": False}


def invalid_request(exc: InvalidRow) -> InvalidRequest:
    return InvalidRequest(str(exc), details=[e.to_dict() for e in exc.errors])


class Predictions:
    """Resolves the model in the registry and its kind's serving; `caches` by the serving's cache kind ("local",
    "shared"), none when absent; `recorder` None records nothing (the workers: a batch is its own record)."""

    def __init__(
        self,
        registry: ModelRegistry,
        servings: Mapping[str, Serving],
        caches: Mapping[str, Cache] | None = None,
        recorder: Recorder | None = None,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self.registry = registry
        self.servings = dict(servings)
        self.caches = dict(caches or {})
        self.recorder = recorder
        self.shadow = shadow
        self._direct = DirectServing()
        self._no_cache = NoCache()

    def model(self, name: str, version: str | None = None) -> tuple[PredictiveModel, Serving]:
        """The model served under `name` (or that version of it) and its kind's serving; ModelNotFound or
        VersionNotFound (404) when there is none."""
        model = self.registry.get(name, version)
        return model, self.servings.get(model.kind, self._direct)

    async def predict_one(self, name: str, body: Any, caller: Caller = Caller()) -> bytes:
        """The JSON answer to one request body. InvalidRequest (422) names every bad field."""
        started = time.perf_counter()
        model, serving = self.model(name)
        try:
            if serving.reads_database(body):
                prepared = await asyncio.to_thread(serving.prepare, model, body)
            else:
                prepared = serving.prepare(model, body)
        except InvalidRow as exc:
            raise invalid_request(exc) from exc
        cache = self.caches.get(serving.cache, self._no_cache)
        key = cache.key(model.version, prepared.key)
        hit = await cache.get(key)
        if hit is not None:
            self._record(model, serving, body, orjson.loads(hit), started, True, caller)
            return hit[:-1] + b',"cached":true}'
        try:
            answer = serving.predict(model, prepared).to_dict()
        except InvalidRow as exc:
            raise invalid_request(exc) from exc
        content = orjson.dumps(answer)
        cache.set(key, content)
        self._record(model, serving, body, answer, started, False, caller)
        if self.shadow is not None:
            self.shadow.offer(name, model.version, prepared.row, answer)
        return content[:-1] + b',"cached":false}'

    def prepare_batch(self, name: str, items: list[Any]) -> tuple[list[Any], dict[int, InvalidRow]]:
        """Each item as its model's row (the serving's `batch_row`), and the items refused on the way, by index (a
        refused item stays as it came). The rows are validated by `predict`, each on its own; an item too large
        to be validated refuses the whole batch (TooLarge)."""
        model, serving = self.model(name)
        rows: list[Any] = []
        refused: dict[int, InvalidRow] = {}
        for index, item in enumerate(items):
            try:
                rows.append(serving.batch_row(model, item))
            except InvalidRow as exc:
                refused[index] = exc
                rows.append(item)
            except NotFound as exc:
                refused[index] = InvalidRow([FieldError("sensor_id", exc.message)])
                rows.append(item)
            except TooLarge as exc:
                exc.message = f"items[{index}].{exc.message}"
                exc.details = [{**d, "field": f"items[{index}].{d['field']}"} for d in exc.details]
                raise
        return rows, refused

    def predict(
        self, name: str, rows: Sequence[Any], caller: Caller = Caller(), version: str | None = None
    ) -> list[dict[str, Any]]:
        """One outcome per model row, in order (see `outcome_of`); one bad row never sinks the others. `version`:
        that version's outcomes (a batch keeps the version it was submitted under), else the champion's."""
        model, serving = self.model(name, version)
        return [outcome_of(o) for o in serving.predict_rows(model, rows)]

    def _record(
        self,
        model: PredictiveModel,
        serving: Serving,
        body: Any,
        answer: Mapping[str, Any],
        started: float,
        cached: bool,
        caller: Caller,
    ) -> None:
        """Count the prediction and hand its record to the recorder, on the event loop's next turn: after the
        answer is sent, the client reading it meanwhile."""
        latency_ms = (time.perf_counter() - started) * 1e3
        columns = serving.record_columns(answer)
        args = (model, body, datetime.now(UTC), latency_ms, cached, caller, columns)
        try:
            asyncio.get_running_loop().call_soon(self._write_record, *args)
        except RuntimeError:
            self._write_record(*args)

    def _write_record(
        self,
        model: PredictiveModel,
        body: Any,
        created_at: datetime,
        latency_ms: float,
        cached: bool,
        caller: Caller,
        columns: dict[str, Any],
    ) -> None:
        series(PREDICTIONS, model.name, model.version, "true" if cached else "false").inc()
        if self.recorder is None:
            return
        self.recorder.record_prediction(
            {
                "created_at": created_at,
                "model_name": model.name,
                "model_version": model.version,
                "inputs": dict(body) if isinstance(body, Mapping) else {"body": body},
                "latency_ms": latency_ms,
                "cached": cached,
                "request_id": caller.request_id,
                "key_id": caller.key_id,
                **columns,
            }
        )
