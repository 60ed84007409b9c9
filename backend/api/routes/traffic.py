from datetime import UTC, date, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as FastApiPath
from starlette.concurrency import run_in_threadpool

from backend.api.auth import ADMIN, AUTH_ERRORS, READ
from backend.api.deps import CongestionServiceDep, SensorDirectoryDep, SessionDep, SessionsDep
from backend.api.params import Cursor, PageNumber
from backend.core.errors import InvalidRequest, TooLarge
from backend.schemas.errors import ErrorResponse
from backend.schemas.pages import Page
from backend.schemas.traffic import (
    FLAT_READING_EXAMPLE,
    MAX_READINGS_PER_CALL,
    NESTED_READING_EXAMPLE,
    IngestResult,
    NetworkForecast,
    ReadingOut,
    ReadingsIngestRequest,
    SensorDetail,
    SensorIn,
    SensorOut,
    SensorsUpsertResult,
    SpeedProfile,
)
from backend.services import demo_feed, readings, traffic

# Reads need the `read` scope, writes (readings, sensors) `admin`.
router = APIRouter(prefix="/api/traffic", tags=["traffic"], responses=AUTH_ERRORS)

ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse},
}  # fmt: skip


async def _json_body(request: Request) -> Any:
    """JSON, or the text of a CSV body; its size is bounded by REQUEST_MAX_BYTES (the request middleware)."""
    body = await request.body()
    if "csv" in request.headers.get("content-type", ""):
        return body.decode("utf-8", errors="replace")
    try:
        return orjson.loads(bytes(body))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", details=[{"field": "body"}]) from exc


@router.post(
    "/readings",
    dependencies=[ADMIN],
    response_model=IngestResult,
    responses=ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": ReadingsIngestRequest.model_json_schema(),
        "example": {"readings": [FLAT_READING_EXAMPLE, NESTED_READING_EXAMPLE]}}}}},
)  # fmt: skip
async def ingest_readings(request: Request, sessions: SessionsDep, sensors: SensorDirectoryDep) -> IngestResult:
    """Store 1 to 10,000 readings. Each invalid one is refused with its index while the others are stored; a
    reading already stored (same sensor and timestamp) counts as a duplicate. Stored before the answer leaves."""
    body = await _json_body(request)
    items = body.get("readings") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise InvalidRequest("the body must be {\"readings\": [...]} with 1 to 10,000 readings",
                             details=[{"field": "readings"}])  # fmt: skip
    if len(items) > MAX_READINGS_PER_CALL:
        raise TooLarge(f"at most {MAX_READINGS_PER_CALL:,} readings per call; got {len(items):,}",
                       details=[{"field": "readings", "max": MAX_READINGS_PER_CALL, "got": len(items)}])  # fmt: skip
    outcome = await run_in_threadpool(readings.ingest, sessions, sensors, items, "rest")
    return IngestResult(accepted=outcome.accepted, duplicates=outcome.duplicates, rejected=outcome.rejected)


@router.post(
    "/readings/sample",
    dependencies=[ADMIN],
    response_model=IngestResult,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def load_sample_readings(
    sessions: SessionsDep,
    sensors: SensorDirectoryDep,
    congestion: CongestionServiceDep,
    hours: Annotated[int, Query(ge=1, le=168, description="how many hours up to now, 1 to 168")] = 24,
) -> IngestResult:
    """Store the demo's readings of every congestion-model sensor for the last `hours` (a sample day by default):
    the same values the demo feed publishes, so what it already stored counts as duplicates."""
    outcome = await run_in_threadpool(
        demo_feed.store_sample, sessions, sensors, congestion.model(), datetime.now(UTC), hours * 12
    )
    return IngestResult(accepted=outcome.accepted, duplicates=outcome.duplicates, rejected=outcome.rejected[:20])


def _json(items: list[dict[str, Any]]) -> Response:
    """A whole network's sensors, answered without validating each again (the service builds SensorOut's fields;
    tests check them against it), as FastAPI would write them (UTC as Z)."""
    return Response(orjson.dumps(items, option=orjson.OPT_UTC_Z), media_type="application/json")


@router.get("/sensors", dependencies=[READ], response_model=list[SensorOut], responses={503: {"model": ErrorResponse}})
def list_sensors(session: SessionDep) -> Response:
    """Every registered sensor: coordinates, free-flow speed, newest reading and its congestion level."""
    return _json(traffic.list_sensors(session))


@router.put(
    "/sensors",
    dependencies=[ADMIN],
    responses=ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "properties": {"sensors": {
            "type": "array", "items": SensorIn.model_json_schema()}}}},
        "text/csv": {"schema": {"type": "string"}, "example": "sensor_id,latitude,longitude\n773869,34.15,-118.32"},
    }}},
)  # fmt: skip
async def put_sensors(request: Request, sessions: SessionsDep, sensors: SensorDirectoryDep) -> SensorsUpsertResult:
    """Register or update sensors: JSON `{"sensors": [...]}`, or the sensor table as CSV (`text/csv`: with a
    header `sensor_id,latitude,longitude[,name,free_flow_mph]`, or the header-less METR-LA layout)."""
    body = await _json_body(request)
    if isinstance(body, str):
        items = traffic.sensors_from_csv(body)
    elif isinstance(body, dict) and isinstance(body.get("sensors"), list):
        items = body["sensors"]
    else:
        raise InvalidRequest("send {\"sensors\": [...]} as JSON, or the sensor table as text/csv",
                             details=[{"field": "sensors"}])  # fmt: skip
    result = await run_in_threadpool(traffic.upsert_sensors, sessions, items)
    sensors.reload_soon()
    return result


@router.get("/current", dependencies=[READ], response_model=list[SensorOut], responses={503: {"model": ErrorResponse}})
def current(session: SessionDep) -> Response:
    """The newest reading of each sensor that has one, its congestion level and how old it is."""
    return _json(traffic.current(session))


@router.get(
    "/historical/{day}", dependencies=[READ], responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}}
)
def historical(
    day: Annotated[date, FastApiPath(ge=date(1970, 1, 2), le=date(2100, 12, 30), description="YYYY-MM-DD")],
    session: SessionDep,
    sensor_id: Annotated[str | None, Query(max_length=64)] = None,
    utc_offset_minutes: Annotated[int, Query(ge=-720, le=840, description="the day's zone; UTC by default")] = 0,
    page: PageNumber = 1,
    size: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> Page[ReadingOut]:
    """Readings of one day (YYYY-MM-DD), oldest first, optionally of one sensor, with totals and pages; go on
    with `cursor` (a page's `next`)."""
    return traffic.readings_of_day(session, day, sensor_id, page, size, utc_offset_minutes, cursor)


@router.get("/sensors/{sensor_id}/readings", dependencies=[READ], responses=ERRORS | {404: {"model": ErrorResponse}})
def sensor_readings(
    sensor_id: str,
    session: SessionDep,
    since: Annotated[datetime | None, Query(description="ISO-8601 with a zone; inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO-8601 with a zone; exclusive")] = None,
    page: PageNumber = 1,
    size: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> Page[ReadingOut]:
    """One sensor's readings between two times, oldest first, with totals and pages; go on with `cursor` (a
    page's `next`)."""
    return traffic.readings_of_sensor(session, sensor_id, since, until, page, size, cursor)


@router.get(
    "/sensors/{sensor_id}",
    dependencies=[READ],
    responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
def sensor_detail(sensor_id: str, session: SessionDep, congestion: CongestionServiceDep) -> SensorDetail:
    """One sensor: coordinates, newest reading and level, and the neighbours its forecasts read."""
    return traffic.sensor_detail(session, sensor_id, congestion.neighbours_of(sensor_id))


@router.get("/sensors/{sensor_id}/profile", dependencies=[READ], responses=ERRORS | {404: {"model": ErrorResponse}})
def speed_profile(
    sensor_id: str,
    session: SessionDep,
    weekday: Annotated[int | None, Query(ge=0, le=6, description="0 = Monday; by default the newest reading's")] = None,
    weeks: Annotated[int, Query(ge=1, le=52)] = 8,
) -> SpeedProfile:
    """The sensor's usual speeds through one weekday: 10th, 50th and 90th percentiles by quarter hour, over the
    weeks up to its newest reading."""
    return traffic.weekday_profile(session, sensor_id, weekday, weeks)


@router.get("/forecast", dependencies=[READ], responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
def network_forecast(congestion: CongestionServiceDep) -> NetworkForecast:
    """Every sensor's speed and level 15, 30 and 60 minutes ahead from the stored readings, in one call: each
    answered as POST /api/predict/congestion would answer it; the sensors without enough recent readings are
    listed with why."""
    return congestion.network_forecast()
