"""The network's congestion at a glance: every sensor's forecast from its stored readings, read in one query, as
`POST /api/predict/congestion` would answer it one by one."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import DependencyUnavailable
from backend.db import readings as stored
from backend.db.models import TrafficReading
from backend.ml.congestion.model import CongestionModel
from backend.ml.errors import InvalidRow
from backend.ml.registry import ModelNotFound, ModelRegistry
from backend.predictions.kinds import WINDOW, CongestionServing
from backend.schemas.traffic import CongestionPredictionResponse, NetworkForecast, UnavailableSensor


class CongestionService:
    def __init__(
        self,
        registry: ModelRegistry,
        sessions: sessionmaker[Session],
        serving: CongestionServing,
        model_name: str = "congestion",
    ) -> None:
        self.registry = registry
        self.sessions = sessions
        self.serving = serving
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

    def network_forecast(self) -> NetworkForecast:
        """Every model sensor's forecast from its stored readings: the sensors with a reading in the hour up to
        the network's newest. The others are listed as unavailable, with why."""
        model = self.model()
        try:
            with self.sessions() as session:
                newest = stored.newest_time(session)
                recent = [] if newest is None else stored.window(session, model.sensor_ids, newest - 2 * WINDOW, newest)
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
                forecast = model.predict_one(self.serving.from_window(sensor_id, window).row)
            except InvalidRow as exc:
                unavailable.append(UnavailableSensor(sensor_id=sensor_id, reason=exc.errors[0].message))
                continue
            forecasts.append(CongestionPredictionResponse.model_validate(forecast.to_dict()))
        return NetworkForecast(as_of=newest, model_version=model.version, forecasts=forecasts,
                               unavailable=unavailable)  # fmt: skip
