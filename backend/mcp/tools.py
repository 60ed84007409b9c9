"""The service tools: predictions, batches, the road network, models and records. Each is a thin call into the
same service a REST route calls, so a tool answers what the route answers."""

from __future__ import annotations

import inspect
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from pydantic import Field
from sqlalchemy.orm import Session

from backend.core.errors import InvalidRequest
from backend.db.session import guarded_session
from backend.ml.eclo.features import INPUT_FIELDS
from backend.ml.eclo.vocabulary import ENGLISH
from backend.predictions.entry import Caller
from backend.schemas.eclo import EcloInput
from backend.schemas.models import ModelInfo
from backend.schemas.traffic import SensorOut
from backend.services import batches, history, traffic

from .toolkit import Toolkit, bounded

SensorId = Annotated[str, Field(min_length=1, max_length=64, description="a road sensor's id, e.g. '773869'")]


def _vocabulary(allowed: dict[str, list[str]]) -> str:
    """Each categorical input's allowed Korean values with their English meaning, for the model to call right."""
    lines = []
    for spec in INPUT_FIELDS:
        if spec.kind == "integer":
            lines.append(f"- {spec.name}: integer {spec.low}..{spec.high} ({spec.description})")
            continue
        values = ", ".join(f"{v} ({ENGLISH[v]})" if v in ENGLISH else v for v in _major(allowed.get(spec.name, [])))
        optional = "" if spec.required else ", optional"
        lines.append(f"- {spec.name} ({spec.description}{optional}): {values}")
    return "\n".join(lines)


def _major(values: list[str]) -> list[str]:
    """The major classes ('교차로', '중구'), not the full values ('교차로 - 교차로안', '중구 동성로1가') they head."""
    return [v for v in values if " " not in v]


def register(kit: Toolkit, allowed: dict[str, list[str]]) -> None:
    """`allowed`: the ECLO model's values per categorical input (its vocabulary), listed in the descriptions."""
    vocabulary = _vocabulary(allowed)

    def caller_of(scope: str | None) -> Caller:
        return Caller(request_id=f"mcp-{uuid.uuid4().hex[:12]}", key_id=kit.caller(scope).key_id)

    async def predict_eclo(accident: EcloInput) -> dict[str, Any]:
        """The severity of one road accident in Daegu: its ECLO (10 x deaths + 5 x serious + 3 x minor + 1 x
        reported injuries), the chance of a death or serious injury, the risk level and what drove it; the same
        answer as POST /api/predict/eclo."""
        answer = await kit.services.predictions.predict_one(
            "eclo", accident.model_dump(exclude_none=True), caller_of("predict")
        )
        return orjson.loads(answer)

    predict_eclo.__doc__ = f"{inspect.cleandoc(predict_eclo.__doc__ or '')}\n\nAllowed values:\n{vocabulary}"
    kit.tool("predict")(predict_eclo)

    @kit.tool("predict", live=True)
    async def predict_congestion(
        sensor_id: SensorId,
        recent: Annotated[
            list[dict[str, Any]] | None,
            Field(
                description="optional: the sensor's readings of the last hour, each {timestamp, speed_mph}; "
                "without them the stored readings are used"
            ),
        ] = None,
    ) -> dict[str, Any]:
        """A road sensor's speed (mph) and congestion level (free, moderate, heavy, severe) 15, 30 and 60 minutes
        ahead, from its recent readings (each time with its zone, e.g. 2012-03-07T08:00:00-08:00) or, without them,
        its stored ones and its neighbours'; the same answer as POST /api/predict/congestion."""
        body: dict[str, Any] = {"sensor_id": sensor_id, **({"recent": recent} if recent is not None else {})}
        answer = await kit.services.predictions.predict_one("congestion", body, caller_of("predict"))
        return orjson.loads(answer)

    @kit.tool("predict", read_only=False)
    def submit_batch(
        model: Annotated[str, Field(description="'eclo' or 'congestion'", max_length=64)],
        items: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=100)],
    ) -> dict[str, Any]:
        """Queue 1 to 100 prediction inputs for the workers (each item as predict_eclo's `accident` or
        predict_congestion's arguments); poll batch_status with the answered batch_id."""
        services = kit.services
        resources = services.resources
        caller = caller_of("predict")
        accepted = batches.submit_batch(
            store=resources.batches,
            predictions=services.predictions,
            recorder=services.recorder,
            items=items,
            model=model,
            request_id=caller.request_id or "",
            settings=kit.settings,
            owner=caller.key_id,
        )
        return accepted.model_dump(mode="json")

    @kit.tool(None, live=True)
    def batch_status(batch_id: Annotated[str, Field(max_length=64)]) -> dict[str, Any]:
        """A batch's status, progress and (once done) its rows, at most the tool's row limit of them."""
        resources = kit.services.resources
        status = batches.batch_status(
            store=resources.batches,
            sessions=resources.sessions,
            batch_id=batch_id,
            settings=kit.settings,
            viewer=kit.caller(None),
        ).model_dump(mode="json")
        if status.get("results"):
            status.update(bounded(status.pop("results"), kit.max_rows, key="results"))
        return status

    @kit.tool("predict")
    def risk_ranking(
        conditions: Annotated[
            dict[str, Any],
            Field(description="the accident's conditions as predict_eclo's `accident`, without `district`"),
        ],
    ) -> dict[str, Any]:
        """Daegu's 구/군 (districts) ranked by the predicted chance of a death or serious injury under the given
        conditions (weather, road, time), riskiest first, each with its ECLO and risk level."""
        predictions = kit.services.predictions
        districts = _major(allowed.get("district", []))
        items = [{**conditions, "district": d} for d in districts]
        rows, refused = predictions.prepare_batch("eclo", items)
        if refused:
            first = next(iter(refused.values()))
            raise InvalidRequest(f"conditions: {first.summary()}", details=[e.to_dict() for e in first.errors])
        outcomes = predictions.predict("eclo", rows)
        if errors := [o for o in outcomes if "error" in o]:
            raise InvalidRequest(f"conditions: {errors[0]['error']}", details=errors[0]["details"])
        ranked = sorted(zip(districts, outcomes, strict=True), key=lambda pair: -pair[1]["p_severe"])
        return {
            "ranking": [
                {
                    "district": d,
                    "english": ENGLISH.get(d, d),
                    "p_severe": o["p_severe"],
                    "eclo": o["eclo"],
                    "risk_level": o["risk_level"],
                }
                for d, o in ranked
            ]
        }

    @kit.tool("read", live=True)
    def network_status(
        slowest: Annotated[int, Field(ge=1, le=100, description="how many of the slowest sensors to list")] = 10,
    ) -> dict[str, Any]:
        """The road network now: how many sensors are at each congestion level by their newest reading, and the
        slowest sensors (speed against their free-flow speed)."""
        with _session(kit) as session:
            sensors = [SensorOut.model_validate(s) for s in traffic.current(session)]
        levels = Counter(s.latest.level or "unknown" for s in sensors if s.latest)
        ranked = sorted(sensors, key=lambda s: s.latest.speed_mph / (s.free_flow_mph or s.latest.speed_mph or 1))
        slow = [
            {
                "sensor_id": s.sensor_id,
                "speed_mph": s.latest.speed_mph,
                "free_flow_mph": s.free_flow_mph,
                "level": s.latest.level,
                "timestamp": s.latest.timestamp.isoformat(),
            }
            for s in ranked[:slowest]
        ]
        return {"sensors_reporting": len(sensors), "levels": dict(levels), "slowest": slow}

    @kit.tool("read", live=True)
    def forecast_network() -> dict[str, Any]:
        """Every model sensor's forecast from the stored readings (as GET /api/traffic/forecast), slowest at
        +15 minutes first, at most the tool's row limit of them; the sensors without a forecast are counted."""
        forecast = kit.services.congestion.network_forecast().model_dump(mode="json")
        ordered = sorted(forecast["forecasts"], key=lambda f: f["forecasts"][0]["speed_mph"])
        return {
            "as_of": forecast["as_of"],
            "model_version": forecast["model_version"],
            **bounded(ordered, kit.max_rows, key="forecasts"),
            "unavailable": len(forecast["unavailable"]),
        }

    @kit.tool("read", live=True)
    def sensor_history(
        sensor_id: SensorId,
        hours: Annotated[int, Field(ge=1, le=24 * 14, description="readings of the last this many hours")] = 6,
        weeks: Annotated[int, Field(ge=1, le=12, description="weeks the usual-speed profile covers")] = 4,
    ) -> dict[str, Any]:
        """A sensor's readings up to now (newest last, at most the tool's row limit) and its usual speeds by quarter
        hour on its newest reading's weekday (10th, 50th and 90th percentiles)."""
        since = datetime.now(UTC) - timedelta(hours=hours)
        with _session(kit) as session:
            detail = traffic.sensor_detail(session, sensor_id, kit.services.congestion.neighbours_of(sensor_id))
            page = traffic.readings_of_sensor(session, sensor_id, since, None, 1, kit.max_rows)
            profile = traffic.weekday_profile(session, sensor_id, None, weeks)
        readings = [r.model_dump(mode="json") for r in page.items]
        return {
            "sensor": detail.model_dump(mode="json"),
            "readings": readings,
            "left_out": max(0, page.total - len(readings)),  # with left_out_exact false: at least this many
            "left_out_exact": page.total_exact,
            "profile": profile.model_dump(mode="json"),
        }

    @kit.tool(None)
    def model_info(name: Annotated[str | None, Field(max_length=64)] = None) -> dict[str, Any]:
        """The served models (or the one named): version, metrics against their baselines, inputs they accept."""
        registry = kit.services.resources.registry
        names = [name] if name else registry.names()
        return {"models": [ModelInfo.of(registry.get(n).info()).model_dump(mode="json") for n in names]}

    @kit.tool("read", live=True)
    def recent_predictions(
        model: Annotated[
            str | None, Field(max_length=64, description="'eclo' or 'congestion'; all when absent")
        ] = None,
        hours: Annotated[int, Field(ge=1, le=24 * 90)] = 24,
        size: Annotated[int, Field(ge=1, le=100)] = 20,
        cursor: Annotated[
            str | None, Field(max_length=200, description="the `next` of an earlier answer: the records after it")
        ] = None,
    ) -> dict[str, Any]:
        """The newest prediction records (input, answer, who asked, when), newest first; `total` counts up to
        10,000 (`total_exact` false: more than that)."""
        since = datetime.now(UTC) - timedelta(hours=hours)
        with _session(kit) as session:
            page = history.list_predictions(
                session=session, page=1, size=min(size, kit.max_rows), model=model, since=since, cursor=cursor
            )
        return page.model_dump(mode="json")

    @kit.tool("read", live=True)
    def dataset_status(dataset_id: Annotated[str, Field(max_length=64)]) -> dict[str, Any]:
        """An uploaded dataset: its record (kind, rows, columns) and its latest scoring job's progress."""
        datasets = kit.services.datasets
        detail = datasets.detail(dataset_id, 1, 5).model_dump(mode="json")
        job = datasets.job_status(dataset_id).model_dump(mode="json")
        return {"dataset": detail, "job": job}


@contextmanager
def _session(kit: Toolkit) -> Iterator[Session]:
    """A database session for a tool; a database error is the 503 the REST route answers."""
    with guarded_session(kit.services.resources.sessions, "read the records") as session:
        yield session
