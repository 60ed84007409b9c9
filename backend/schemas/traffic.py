"""Sensors, readings and congestion predictions: the bodies of the traffic routes and of the live feed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from backend.ml.congestion.model import MAX_READINGS

MAX_READINGS_PER_CALL = 10_000
MAX_NEIGHBOURS = 64  # sensors in a congestion request's `neighbour_readings`
MAX_SENSORS_PER_CALL = 10_000

FLAT_READING_EXAMPLE = {
    "sensor_id": "773869",
    "timestamp": "2012-03-01T08:00:00-08:00",
    "speed_mph": 61.5,
    "volume": 1200,
    "occupancy": 8.5,
}
NESTED_READING_EXAMPLE = {
    "sensor_id": "773869",
    "timestamp": "2012-03-01T08:05:00-08:00",
    "traffic_data": {"speed_mph": 58.0, "volume_vehicles_per_hour": 1320, "occupancy_percent": 9.1},
}


class ReadingsIngestRequest(BaseModel):
    """Documentation of the body; the route reads it itself so that each bad reading is refused on its own."""

    readings: list[dict[str, Any]] = Field(
        description=f"1 to {MAX_READINGS_PER_CALL:,} readings, flat or nested (`traffic_data`), mixed freely",
        json_schema_extra={"examples": [[FLAT_READING_EXAMPLE, NESTED_READING_EXAMPLE]]},
    )


class RejectedReading(BaseModel):
    index: int
    message: str


class IngestResult(BaseModel):
    accepted: int = Field(description="stored by this call (in the database before this answer left)")
    duplicates: int = Field(description="already stored (same sensor and timestamp), or repeated within the call")
    rejected: list[RejectedReading]


class SensorIn(BaseModel):
    sensor_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(default=None, max_length=200)
    free_flow_mph: float | None = Field(default=None, gt=0, le=120)


class SensorsUpsertResult(BaseModel):
    created: int
    updated: int


class LatestReading(BaseModel):
    timestamp: datetime = Field(description="in the time zone the reading came in")
    speed_mph: float
    level: str | None = Field(description="congestion level of this speed against the sensor's free-flow speed")
    age_seconds: float = Field(description="how long ago the reading was taken")


class SensorOut(BaseModel):
    sensor_id: str
    latitude: float
    longitude: float
    name: str | None
    free_flow_mph: float | None
    latest: LatestReading | None


class SensorDetail(SensorOut):
    neighbours: list[str] = Field(description="the sensors the congestion model reads beside this one")


class ProfileBin(BaseModel):
    minute_of_day: int = Field(description="start of the quarter hour, in minutes after local midnight")
    p10: float
    median: float
    p90: float
    readings: int


class SpeedProfile(BaseModel):
    sensor_id: str
    weekday: int | None = Field(description="0 = Monday ... 6 = Sunday, in the zone the readings came in")
    weeks: int = Field(description="how many weeks back from the sensor's newest reading were read")
    days: int = Field(description="how many days of that weekday had readings")
    bins: list[ProfileBin]


class ReadingOut(BaseModel):
    sensor_id: str
    timestamp: datetime = Field(description="in the time zone the reading came in")
    speed_mph: float
    volume: float | None
    occupancy: float | None


class CongestionPredictRequest(BaseModel):
    sensor_id: str = Field(min_length=1, max_length=64)
    recent: list[dict[str, Any]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_READINGS,
        description="the sensor's recent readings (flat or nested, `sensor_id` optional); without them the "
        "stored readings of the sensor and its neighbours are used",
    )
    neighbour_readings: dict[str, list[dict[str, Any]]] | None = Field(
        default=None,
        max_length=MAX_NEIGHBOURS,
        description="with `recent`: neighbours' readings by sensor id (optional)",
    )


class CongestionForecastItem(BaseModel):
    horizon_minutes: int
    at: datetime
    speed_mph: float
    level: str


class CongestionPredictionResponse(BaseModel):
    sensor_id: str
    model_version: str
    as_of: datetime = Field(description="the newest reading the forecast starts from")
    readings_used: int
    forecasts: list[CongestionForecastItem]
    cached: bool = False


class UnavailableSensor(BaseModel):
    sensor_id: str
    reason: str


class NetworkForecast(BaseModel):
    as_of: datetime | None = Field(description="the network's newest stored reading (UTC); null when none is stored")
    model_version: str
    forecasts: list[CongestionPredictionResponse] = Field(
        description="each sensor with enough readings in the hour up to its newest, as POST /api/predict/congestion "
        "answers it from the stored readings"
    )
    unavailable: list[UnavailableSensor] = Field(description="the model's other sensors, each with why")
