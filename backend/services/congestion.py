"""Congestion predictions for the API: a request (`sensor_id`, optional inline `recent` readings) becomes the
model's row — from the stored readings of the sensor and its neighbours in the hour up to its newest reading when
nothing is inline — and is answered in-process behind the prediction cache, or queued as a batch row."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import DependencyUnavailable, InvalidRequest, NotFound
from backend.db import readings as stored
from backend.db.models import TrafficReading
from backend.db.recorder import Recorder
from backend.ml.congestion.model import CongestionForecast, CongestionModel
from backend.ml.errors import FieldError, InvalidRow
from backend.ml.registry import ModelNotFound, ModelRegistry
from backend.schemas.traffic import (
    CongestionPredictionResponse,
    CongestionPredictRequest,
    NetworkForecast,
    UnavailableSensor,
)
from backend.services.predictions import PredictionCache, record_prediction
from backend.services.traffic import local_time

WINDOW = timedelta(hours=1)


class NotEnoughReadings(InvalidRow):
    pass


def _problems(exc: ValidationError) -> list[FieldError]:
    return [FieldError(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()]


class CongestionService:
    def __init__(
        self,
        registry: ModelRegistry,
        sessions: sessionmaker[Session],
        cache: PredictionCache,
        min_readings: int,
        recorder: Recorder | None = None,
        model_name: str = "congestion",
    ) -> None:
        self.registry = registry
        self.sessions = sessions
        self.cache = cache
        self.recorder = recorder
        self.min_readings = min_readings
        self.model_name = model_name

    def model(self) -> CongestionModel:
        model = self.registry.get(self.model_name)
        assert isinstance(model, CongestionModel), f"model {self.model_name!r} is not of the congestion kind"
        return model

    def neighbours_of(self, sensor_id: str) -> list[str]:
        """The sensors the model reads beside this one (none when no congestion model is served)."""
        try:
            return list(self.model().neighbours.get(sensor_id, []))
        except ModelNotFound:
            return []

    def model_row(self, body: Any) -> tuple[dict[str, Any], str]:
        """The model's input for a request body, and the cache key of the answer. InvalidRow names what is
        wrong (NotEnoughReadings among them); NotFound for a sensor the model does not know; the database is
        read only when nothing is inline."""
        try:
            request = CongestionPredictRequest.model_validate(body)
        except ValidationError as exc:
            raise InvalidRow(_problems(exc)) from exc
        model = self.model()
        if request.sensor_id not in model.index:
            raise NotFound(f"unknown sensor {request.sensor_id!r}: the congestion model {model.version} has "
                           f"{len(model.sensor_ids)} sensors (GET /api/traffic/sensors)")  # fmt: skip
        if request.recent is not None:
            row = {"sensor_id": request.sensor_id, "readings": request.recent,
                   "neighbour_readings": request.neighbour_readings or {}}  # fmt: skip
            try:
                encoded = orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
            except TypeError as exc:  # an integer beyond 64 bits, from a body parsed by the standard json
                raise InvalidRow([FieldError("recent", f"holds a value that is not plain JSON: {exc}")]) from exc
            return row, f"inline:{hashlib.blake2b(encoded, digest_size=16).hexdigest()}"
        try:
            with self.sessions() as session:
                return self._stored_row(model, request.sensor_id, session)
        except SQLAlchemyError as exc:
            raise DependencyUnavailable("database", "cannot read the stored readings") from exc

    def _stored_row(self, model: CongestionModel, sensor_id: str, session: Session) -> tuple[dict[str, Any], str]:
        newest = stored.latest_time(session, sensor_id)
        if newest is None:
            message = f"sensor {sensor_id!r} has no stored readings; {self.min_readings} in one hour are needed"
            raise NotEnoughReadings([FieldError("sensor_id", f"{message} (or send `recent`)")])
        neighbours = model.neighbours.get(sensor_id, [])
        return self._row_of_window(sensor_id, stored.window(session, [sensor_id, *neighbours], newest - WINDOW, newest))

    def _row_of_window(self, sensor_id: str, readings: list[TrafficReading]) -> tuple[dict[str, Any], str]:
        """The model's row from the readings of a sensor and its neighbours in the hour up to the sensor's newest
        (oldest first), and its cache key; NotEnoughReadings when the sensor has too few."""
        own = [r for r in readings if r.sensor_id == sensor_id and r.speed_mph > 0]
        if len(own) < self.min_readings:
            raise NotEnoughReadings([FieldError("sensor_id", (
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
        return row, f"stored:{sensor_id}:{newest.timestamp():.0f}:{latest.timestamp():.0f}:{len(readings)}"

    def network_forecast(self) -> NetworkForecast:
        """Every model sensor's forecast from its stored readings, as `predict` would answer it one by one,
        read in one query: the sensors with a reading in the hour up to the network's newest. The others are
        listed as unavailable, with why."""
        model = self.model()
        try:
            with self.sessions() as session:
                newest = stored.newest_time(session)
                recent = [] if newest is None else stored.window(session, None, newest - 2 * WINDOW, newest)
        except SQLAlchemyError as exc:
            raise DependencyUnavailable("database", "cannot read the stored readings") from exc
        by_sensor: dict[str, list[TrafficReading]] = {}
        for reading in recent:
            by_sensor.setdefault(reading.sensor_id, []).append(reading)
        forecasts: list[CongestionPredictionResponse] = []
        unavailable: list[UnavailableSensor] = []
        for sensor_id in model.sensor_ids:
            own = by_sensor.get(sensor_id)
            if not own or newest is None or own[-1].timestamp <= newest - WINDOW:
                when = "" if newest is None else f" up to the network's newest ({newest.isoformat()})"
                unavailable.append(UnavailableSensor(sensor_id=sensor_id, reason=f"no reading in the hour{when}"))
                continue
            until = own[-1].timestamp
            window = [r for s in (sensor_id, *model.neighbours.get(sensor_id, [])) for r in by_sensor.get(s, ())
                      if until - WINDOW < r.timestamp <= until]  # fmt: skip
            window.sort(key=lambda r: (r.timestamp, r.sensor_id))  # as stored.window orders them
            try:
                row, _ = self._row_of_window(sensor_id, window)
                forecast = model.predict_one(row)
            except InvalidRow as exc:
                unavailable.append(UnavailableSensor(sensor_id=sensor_id, reason=exc.errors[0].message))
                continue
            forecasts.append(CongestionPredictionResponse.model_validate(response_of(forecast, row)))
        return NetworkForecast(as_of=newest, model_version=model.version, forecasts=forecasts,
                               unavailable=unavailable)  # fmt: skip

    async def predict(self, body: Any, request_id: str | None = None, key_id: str | None = None) -> bytes:
        """The JSON answer of `POST /api/predict/congestion` (a CongestionPredictionResponse); its record (the
        body as sent, the answer whole) is written later, by the recorder's thread."""
        started = time.perf_counter()
        try:
            inline = isinstance(body, Mapping) and body.get("recent") is not None
            row, key = self.model_row(body) if inline else await asyncio.to_thread(self.model_row, body)
        except InvalidRow as exc:
            raise InvalidRequest(str(exc), details=[e.to_dict() for e in exc.errors]) from exc
        model = self.model()
        cache_key = f"{self.cache.prefix}cong:{model.version}:{key}"
        hit = await self.cache.get(cache_key)
        if hit is not None:
            record_prediction(self.recorder, model, body, started, True, request_id, key_id, output=orjson.loads(hit))
            return hit[:-1] + b',"cached":true}'
        try:
            forecast = model.predict_one(row)
        except InvalidRow as exc:
            raise InvalidRequest(str(exc), details=[e.to_dict() for e in exc.errors]) from exc
        answer = response_of(forecast, row)
        body_bytes = orjson.dumps(answer)
        self.cache.set(cache_key, body_bytes)
        record_prediction(self.recorder, model, body, started, False, request_id, key_id, output=answer)
        return body_bytes[:-1] + b',"cached":false}'


def _zone_of_newest(readings: Any) -> Any:
    """The time zone of the newest reading sent, so that forecast times read in the zone they came in."""
    newest: datetime | None = None
    for reading in readings if isinstance(readings, list) else []:
        stamp = reading.get("timestamp") if isinstance(reading, Mapping) else None
        try:
            moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
        except ValueError:
            moment = None
        if moment is not None and (newest is None or moment.replace(tzinfo=None) > newest.replace(tzinfo=None)):
            newest = moment
    return newest.tzinfo if newest is not None else None


def response_of(forecast: CongestionForecast, row: Mapping[str, Any]) -> dict[str, Any]:
    as_of = datetime.fromisoformat(forecast.as_of).replace(tzinfo=_zone_of_newest(row.get("readings")))
    readings = row.get("readings")
    return {
        "sensor_id": forecast.sensor_id,
        "model_version": forecast.model_version,
        "as_of": as_of.isoformat(),
        "readings_used": len(readings) if isinstance(readings, list) else 0,
        "forecasts": [
            {"horizon_minutes": minutes, "at": (as_of + timedelta(minutes=minutes)).isoformat(),
             "speed_mph": speed, "level": level}
            for minutes, speed, level in zip((15, 30, 60), forecast.speeds, forecast.levels, strict=True)
        ],
    }  # fmt: skip


def prepare_batch(service: CongestionService, items: list[Any]) -> tuple[list[Any], dict[int, InvalidRow]]:
    """Each item as the model's row (stored readings read now, at submission), and the items refused while
    doing so, by index; a refused item stays as it came, for the record."""
    rows: list[Any] = []
    refused: dict[int, InvalidRow] = {}
    for index, item in enumerate(items):
        try:
            row, _ = service.model_row(item)
        except InvalidRow as exc:
            refused[index], row = exc, item
        except NotFound as exc:
            refused[index], row = InvalidRow([FieldError("sensor_id", exc.message)]), item
        rows.append(row)
    return rows, refused
