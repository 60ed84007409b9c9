"""Sensors, readings and congestion predictions: the bodies of the traffic routes and of the live feed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from backend.ml.congestion.model import LATEST_SECONDS, MAX_READINGS

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


class TrafficDataSent(BaseModel):
    """The nested layout's measurements."""

    speed_mph: float = Field(ge=0, le=120, description="mph; 0 is a missing reading (the METR-LA layout)")
    volume_vehicles_per_hour: float | None = Field(default=None, ge=0, description="not used by the model")
    occupancy_percent: float | None = Field(default=None, ge=0, le=100, description="not used by the model")


class ReadingSent(BaseModel):
    """One reading sent with a congestion request, flat (`speed_mph`) or nested (`traffic_data`)."""

    sensor_id: str | None = Field(default=None, max_length=64, description="optional: the sensor it is of")
    timestamp: AwareDatetime | float = Field(
        description="ISO-8601 with a zone (Z or +hh:mm), or epoch seconds (UTC); 1970-2999. A time without a zone "
        "is refused: the forecast's times are given back in the zone of the newest reading"
    )
    speed_mph: float | None = Field(
        default=None, ge=0, le=120, description="mph; 0 is a missing reading; or `traffic_data.speed_mph`"
    )
    volume: float | None = Field(default=None, ge=0, description="not used by the model")
    occupancy: float | None = Field(default=None, ge=0, le=100, description="not used by the model")
    traffic_data: TrafficDataSent | None = Field(default=None, description="the nested layout, instead of speed_mph")


def _inlined(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inlined(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {key: _inlined(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inlined(value, defs) for value in node]
    return node


@dataclass(frozen=True, slots=True)
class DescribedBy:
    """Documents a value as `model` in the JSON schema (and so in GET /api/models and OpenAPI) while it is
    validated as it is typed: the model runtime checks readings itself, naming every bad field. The schema is
    inlined whole: the predict route's OpenAPI body embeds the request's schema, where no `$defs` resolve."""

    model: type[BaseModel]

    def __get_pydantic_json_schema__(self, _: CoreSchema, __: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = self.model.model_json_schema()
        return _inlined(schema, schema.get("$defs", {}))


def _zoned(reading: dict[str, Any]) -> dict[str, Any]:
    """Every time an answer gives carries its zone: a sent time without one is refused (as readings sent to
    POST /api/traffic/readings are), and epoch seconds are read as the UTC instant they are."""
    stamp = reading.get("timestamp")
    if type(stamp) is str and len(stamp) <= 40:
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            return reading  # the model runtime names what is wrong with it
        if moment.tzinfo is None:
            raise PydanticCustomError(
                "time_zone_missing",
                "timestamp has no time zone: '{value}'; add Z (UTC) or an offset such as +09:00",
                {"value": stamp},
            )
    elif type(stamp) in (int, float) and 0 <= stamp < LATEST_SECONDS:  # NaN, inf and huge ints fail the range
        return {**reading, "timestamp": datetime.fromtimestamp(stamp, UTC).isoformat()}
    return reading


SentReading = Annotated[dict[str, Any], AfterValidator(_zoned), DescribedBy(ReadingSent)]


class CongestionPredictRequest(BaseModel):
    """The body of POST /api/predict/congestion (and of each item of its batch route)."""

    sensor_id: str = Field(min_length=1, max_length=64, description="a sensor of the model (GET /api/traffic/sensors)")
    recent: list[SentReading] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_READINGS,
        description="the sensor's recent readings (flat or nested, `sensor_id` optional), at least "
        "CONGESTION_MIN_READINGS (3 by default) with a speed above 0; the forecast starts from the newest. Without "
        "them the stored readings of the sensor and its neighbours in the hour up to its newest are used",
    )
    neighbour_readings: dict[str, list[SentReading]] | None = Field(
        default=None,
        max_length=MAX_NEIGHBOURS,
        description=f"with `recent`: neighbours' readings by sensor id (optional), at most {MAX_READINGS} each",
    )


class CongestionForecastItem(BaseModel):
    horizon_minutes: int
    at: datetime
    speed_mph: float
    level: str
    speed_mph_p10: float | None = Field(
        default=None, description="the uncertainty band's low end (10th percentile): about 1 real speed in 10 is lower"
    )
    speed_mph_p90: float | None = Field(
        default=None,
        description="the band's high end (90th percentile): about 1 real speed in 10 is higher; the model's metrics "
        "coverage_15/30/60 give the share of real speeds inside the band on its test windows",
    )


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
