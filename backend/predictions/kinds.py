"""How each model kind is served: what a request body becomes before the model sees it, which cache holds its
answers and which columns its record fills. The model itself (backend.ml) answers; its prediction's `to_dict()`
is the kind's one answer shape, the same in a single answer, a batch row and a dataset result row.

A kind without a serving of its own (a plug-in of MODEL_PLUGINS, the tests' echo model) is served by
`DirectServing`: the body is the model's row, no cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

import orjson
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import DependencyUnavailable, NotFound, TooLarge
from backend.db import readings as stored
from backend.db.models import TrafficReading
from backend.db.readings import local_time
from backend.ml.congestion.model import MAX_READINGS, CongestionModel
from backend.ml.eclo.model import EcloModel
from backend.ml.errors import FieldError, InvalidRow
from backend.ml.protocol import Prediction, PredictiveModel
from backend.schemas.traffic import MAX_NEIGHBOURS, CongestionPredictRequest

WINDOW = timedelta(hours=1)
CacheKind = Literal["local", "shared", "none"]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A body made ready for its model: the model's row, what its answer depends on (the cache key's part) and
    any state of the kind's own computed on the way (ECLO: the encoded row)."""

    row: Any
    key: bytes
    state: Any = None


class Serving(Protocol):
    cache: CacheKind

    def reads_database(self, body: Any) -> bool:
        """Whether `prepare` reads the database (then it runs off the event loop)."""
        ...

    def prepare(self, model: PredictiveModel, body: Any) -> Prepared:
        """InvalidRow naming every bad field; NotFound for what the model does not know."""
        ...

    def predict(self, model: PredictiveModel, prepared: Prepared) -> Prediction: ...

    def predict_rows(self, model: PredictiveModel, rows: Sequence[Any]) -> list[Prediction | InvalidRow]:
        """`predict` of many model rows, in order, answered in the same shape."""
        ...

    def batch_row(self, model: PredictiveModel, item: Any) -> Any:
        """A batch item as the model's row, made at submission (InvalidRow, NotFound); most kinds leave it as it
        came, for the worker to validate."""
        ...

    def record_columns(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        """The record's columns of this kind, from the answer."""
        ...


def _plain_json(body: Any, field: str) -> bytes:
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # an integer beyond 64 bits, from a body parsed by the standard json
        raise InvalidRow([FieldError(field, f"holds a value that is not plain JSON: {exc}")]) from exc


class DirectServing:
    """The body is the model's row; answers are not cached; the record keeps the answer whole. The kinds' own
    servings change what they need of it."""

    cache: CacheKind = "none"

    def reads_database(self, body: Any) -> bool:
        return False

    def prepare(self, model: PredictiveModel, body: Any) -> Prepared:
        model.validate(body)
        return Prepared(body, _plain_json(body, "body"))

    def predict(self, model: PredictiveModel, prepared: Prepared) -> Prediction:
        return model.predict_one(prepared.row)

    def predict_rows(self, model: PredictiveModel, rows: Sequence[Any]) -> list[Prediction | InvalidRow]:
        return model.predict_many(rows)

    def batch_row(self, model: PredictiveModel, item: Any) -> Any:
        return item

    def record_columns(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        return {"output": dict(answer)}


class EcloServing(DirectServing):
    """Encoded once: the encoding is the cache key and the booster's input. Cheaper to run than a Redis round trip,
    so each process keeps its own answers."""

    cache: CacheKind = "local"

    def prepare(self, model: PredictiveModel, body: Any) -> Prepared:
        assert isinstance(model, EcloModel)
        encoded = model.encode(body)
        return Prepared(body, encoded.features.tobytes() + "\n".join(encoded.notes).encode(), encoded)

    def predict(self, model: PredictiveModel, prepared: Prepared) -> Prediction:
        assert isinstance(model, EcloModel)
        return model.predict_encoded(prepared.state, explain=True)

    def predict_rows(self, model: PredictiveModel, rows: Sequence[Any]) -> list[Prediction | InvalidRow]:
        assert isinstance(model, EcloModel)
        return model.predict_many(rows, explain=True)  # type: ignore[return-value]

    def record_columns(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        return {"eclo": answer["eclo"], "risk_level": answer["risk_level"]}


MAX_READING_FIELDS = 16


def check_sizes(body: Any, where: str = "") -> None:
    """Counts of a congestion body's collections, checked before any of their items is validated: an oversized
    body is refused whole (413) in the time it takes to count, never validated item by item."""

    def refuse(field: str, count: int, most: int, what: str) -> None:
        raise TooLarge(f"{where}{field} holds {count:,} {what}; at most {most} are accepted",
                       details=[{"field": f"{where}{field}", "max": most, "got": count}])  # fmt: skip

    def readings(field: str, value: Any) -> None:
        if isinstance(value, list):
            if len(value) > MAX_READINGS:
                refuse(field, len(value), MAX_READINGS, "readings")
            for index, reading in enumerate(value):
                if isinstance(reading, Mapping) and len(reading) > MAX_READING_FIELDS:
                    refuse(f"{field}[{index}]", len(reading), MAX_READING_FIELDS, "fields")

    if not isinstance(body, Mapping):
        return
    readings("recent", body.get("recent"))
    neighbours = body.get("neighbour_readings")
    if isinstance(neighbours, Mapping):
        if len(neighbours) > MAX_NEIGHBOURS:
            refuse("neighbour_readings", len(neighbours), MAX_NEIGHBOURS, "sensors")
        for sensor, value in neighbours.items():
            readings(f"neighbour_readings.{str(sensor)[:64]}", value)


def count_with_speed(readings: Any) -> int:
    """Readings that carry a speed above 0 (0 is a missing reading, as in METR-LA), flat or nested."""
    count = 0
    for reading in readings if isinstance(readings, list) else []:
        if not isinstance(reading, Mapping):
            continue
        speed = reading.get("speed_mph")
        nested = reading.get("traffic_data")
        if speed is None and isinstance(nested, Mapping):
            speed = nested.get("speed_mph")
        if type(speed) in (int, float) and speed > 0:
            count += 1
    return count


class CongestionServing(DirectServing):
    """A request `{sensor_id, recent?, neighbour_readings?}` becomes the model's row: from the readings sent in
    `recent`, else from the stored readings of the sensor and its neighbours in the hour up to its newest. Either
    way the sensor needs `min_readings` readings with a speed. Answers depend on the database: shared cache."""

    cache: CacheKind = "shared"

    def __init__(self, sessions: sessionmaker[Session] | None, min_readings: int) -> None:
        self.sessions = sessions
        self.min_readings = min_readings

    def reads_database(self, body: Any) -> bool:
        return not (isinstance(body, Mapping) and body.get("recent") is not None)

    def prepare(self, model: PredictiveModel, body: Any) -> Prepared:
        assert isinstance(model, CongestionModel)
        check_sizes(body)
        try:
            request = CongestionPredictRequest.model_validate(body)
        except ValidationError as exc:
            raise InvalidRow(
                [FieldError(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()]
            ) from exc
        if request.sensor_id not in model.index:
            raise NotFound(f"unknown sensor {request.sensor_id!r}: the congestion model {model.version} has "
                           f"{len(model.sensor_ids)} sensors (GET /api/traffic/sensors)")  # fmt: skip
        if request.recent is not None:
            sent = count_with_speed(request.recent)
            if sent < self.min_readings:
                raise InvalidRow([FieldError("recent", (
                    f"holds {sent} reading(s) with a speed above 0; at least {self.min_readings} are needed "
                    "(CONGESTION_MIN_READINGS, as for the stored readings)"))])  # fmt: skip
            row = {"sensor_id": request.sensor_id, "readings": request.recent,
                   "neighbour_readings": request.neighbour_readings or {}}  # fmt: skip
            return Prepared(row, b"inline:" + hashlib.blake2b(_plain_json(row, "recent"), digest_size=16).digest())
        if self.sessions is None:
            raise DependencyUnavailable("database", "no database to read the stored readings from")
        try:
            with self.sessions() as session:
                return self._stored(model, request.sensor_id, session)
        except SQLAlchemyError as exc:
            raise DependencyUnavailable("database", "cannot read the stored readings") from exc

    def _stored(self, model: CongestionModel, sensor_id: str, session: Session) -> Prepared:
        newest = stored.latest_time(session, sensor_id)
        if newest is None:
            message = f"sensor {sensor_id!r} has no stored readings; {self.min_readings} in one hour are needed"
            raise InvalidRow([FieldError("sensor_id", f"{message} (or send `recent`)")])
        neighbours = model.neighbours.get(sensor_id, [])
        return self.from_window(sensor_id, stored.window(session, [sensor_id, *neighbours], newest - WINDOW, newest))

    def from_window(self, sensor_id: str, readings: list[TrafficReading]) -> Prepared:
        """The model's row from the readings of a sensor and its neighbours in the hour up to the sensor's newest
        (oldest first); InvalidRow when the sensor has too few."""
        own = [r for r in readings if r.sensor_id == sensor_id and r.speed_mph > 0]
        if len(own) < self.min_readings:
            raise InvalidRow([FieldError("sensor_id", (
                f"sensor {sensor_id!r} has {len(own)} reading(s) in the hour up to its newest "
                f"({local_time(own[-1] if own else readings[-1]).isoformat()}); at least {self.min_readings} "
                "are needed (or send `recent`)"))])  # fmt: skip
        by_sensor: dict[str, list[dict[str, Any]]] = {}
        for r in readings:
            by_sensor.setdefault(r.sensor_id, []).append(
                {"timestamp": local_time(r).isoformat(), "speed_mph": r.speed_mph}
            )
        newest = max(r.timestamp for r in readings if r.sensor_id == sensor_id)
        latest = max(r.timestamp for r in readings)
        row = {"sensor_id": sensor_id, "readings": by_sensor.pop(sensor_id), "neighbour_readings": by_sensor}
        key = f"stored:{sensor_id}:{newest.timestamp():.0f}:{latest.timestamp():.0f}:{len(readings)}"
        return Prepared(row, key.encode())

    def batch_row(self, model: PredictiveModel, item: Any) -> Any:
        """The readings are read now, at submission: a batch answers for the moment it was sent."""
        return self.prepare(model, item).row


def servings(sessions: sessionmaker[Session] | None, min_readings: int) -> dict[str, Serving]:
    """Kind -> its serving; kinds not listed are served by DirectServing."""
    return {"eclo": EcloServing(), "congestion": CongestionServing(sessions, min_readings)}
