"""Every time the API gives carries its zone (`Z` or `+hh:mm`), on SQLite too, which keeps none: times read back from
the database (records, batches, keys, datasets, conversations, readings), from Redis (a batch still running), in
the zone readings came in, and in forecasts from readings sent with the request."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.core.config import Settings
from backend.db.models import Dataset
from backend.db.session import make_engine, session_factory
from backend.dev.processes import wait_until
from backend.main import create_app
from backend.schemas.eclo import CLASSIC_EXAMPLE
from backend.services.keys import SCOPES, create_key
from backend.tasks.batches import run_batch
from backend.wiring import Resources
from tests.fixtures.traffic import LA, hour_of_readings

TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d")  # a date alone names no moment: no zone to carry
ZONED = re.compile(r".*(Z|[+-]\d\d:\d\d)")
END = datetime(2024, 6, 3, 9, 0, tzinfo=LA)
EPOCH_READINGS = [{"timestamp": 1717430400 + 300 * i, "speed_mph": 50.0 - i} for i in range(4)]  # 2024-06-03 16:00Z


def _times(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _times(item)
    elif isinstance(value, list):
        for item in value:
            yield from _times(item)
    elif isinstance(value, str) and TIME.match(value):
        yield value


def _check(answers: dict[str, Any]) -> int:
    """Each answer holds a time, and every time it holds carries its zone; how many were checked."""
    found = {name: list(_times(answer)) for name, answer in answers.items()}
    assert [name for name, times in found.items() if not times] == []
    assert {name: [t for t in times if not ZONED.fullmatch(t)] for name, times in found.items()} == dict.fromkeys(
        found, []
    )
    return sum(len(times) for times in found.values())


def test_every_time_answered_carries_its_zone(
    app_client: TestClient, app_resources: Resources, network_sensors: list[dict[str, Any]]
) -> None:
    client = app_client
    assert client.put("/api/traffic/sensors", json={"sensors": network_sensors}).status_code == 200
    sensor, other = network_sensors[0]["sensor_id"], network_sensors[1]["sensor_id"]
    ingested = client.post("/api/traffic/readings", json={"readings": hour_of_readings([sensor, other], END)})
    assert ingested.json()["accepted"] == 24, ingested.text
    with app_resources.sessions() as session:  # a row written without a zone: SQLite gives it back as UTC
        session.add(Dataset(id="d" * 32, name="old", filename="old.csv", kind="eclo", model_name="eclo", layout="api",
                            encoding="utf-8", columns=["weather"], rows=1, valid_rows=1, problems=0,
                            has_outcomes=False, size_bytes=10, checksum="0" * 64,
                            uploaded_at=datetime(2026, 1, 2, 3, 4, 5)))  # fmt: skip
        session.commit()

    predicted = {
        "stored": client.post("/api/predict/congestion", json={"sensor_id": sensor}),
        "epoch": client.post("/api/predict/congestion", json={"sensor_id": sensor, "recent": EPOCH_READINGS}),
        "eclo": client.post("/api/predict/eclo", json=CLASSIC_EXAMPLE),
    }
    assert {name: answer.status_code for name, answer in predicted.items()} == dict.fromkeys(predicted, 200)
    assert predicted["stored"].json()["as_of"] == "2024-06-03T09:00:00-08:00"  # in the zone the readings came in
    assert predicted["epoch"].json()["as_of"] == "2024-06-03T16:15:00+00:00"
    items = [{"sensor_id": sensor}, {"sensor_id": other, "recent": EPOCH_READINGS}]
    batch = client.post("/api/predict/congestion/batch", json={"items": items})
    batch_url = f"/api/predict/batch/{batch.json()['batch_id']}/results"
    pending = client.get(batch_url).json()
    assert run_batch(app_resources, batch.json()["batch_id"])["status"] == "success"
    conversation = client.post("/api/assistant/conversations", json={"title": "times"})
    assert conversation.status_code == 201, conversation.text
    assert wait_until(lambda: client.get("/api/predictions").json()["total"] >= 3, timeout=10)
    records_csv = client.get("/api/predictions.csv").content.decode("utf-8-sig")

    checked = _check({
        "predict stored": predicted["stored"].json(),
        "predict epoch": predicted["epoch"].json(),
        "batch pending": pending,
        "batch done": client.get(batch_url).json(),
        "batches": client.get("/api/predict/batch").json(),
        "records": client.get("/api/predictions").json(),
        "records csv": list(csv.reader(io.StringIO(records_csv))),
        "sensors": client.get("/api/traffic/sensors").json(),
        "current": client.get("/api/traffic/current").json(),
        "sensor": client.get(f"/api/traffic/sensors/{sensor}").json(),
        "readings": client.get(f"/api/traffic/sensors/{sensor}/readings").json(),
        "day": client.get("/api/traffic/historical/2024-06-03", params={"utc_offset_minutes": -480}).json(),
        "forecast": client.get("/api/traffic/forecast").json(),
        "datasets": client.get("/api/datasets").json(),
        "conversation": conversation.json(),
        "conversations": client.get("/api/assistant/conversations").json(),
        "models": client.get("/api/models").json(),  # trained_at; the training file's range is given as dates
    })  # fmt: skip
    assert checked > 60


def test_a_reading_sent_without_a_zone_is_refused_saying_so(app_client: TestClient) -> None:
    recent = [{"timestamp": "2024-06-03T08:00:00-08:00", "speed_mph": 50.0},
              {"timestamp": "2024-06-03T08:05:00", "speed_mph": 49.0}]  # fmt: skip
    refused = app_client.post("/api/predict/congestion", json={"sensor_id": "773869", "recent": recent})
    assert refused.status_code == 422
    message = "timestamp has no time zone: '2024-06-03T08:05:00'; add Z (UTC) or an offset such as +09:00"
    assert refused.json()["error"]["details"] == [{"field": "recent.1", "message": message}]


@pytest.fixture
def keyed(app_settings: Settings) -> Iterator[tuple[TestClient, str]]:
    settings = app_settings.model_copy(update={"auth_enabled": True})
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            key = create_key(session, "admin", list(SCOPES))[1]
    finally:
        engine.dispose()
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client, key


def test_keys_are_listed_with_zoned_times(keyed: tuple[TestClient, str]) -> None:
    client, _ = keyed
    made = client.post("/api/keys", json={"name": "desk", "scopes": ["read"]})
    assert made.status_code == 201, made.text
    assert client.delete(f"/api/keys/{made.json()['key_id']}").status_code == 204
    listed = client.get("/api/keys").json()
    assert any(k["revoked_at"] for k in listed)
    assert _check({"made": made.json(), "listed": listed}) >= 4
