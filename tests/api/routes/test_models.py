from datetime import datetime
from typing import Any

import httpx
from fastapi.testclient import TestClient

from backend.ml.eclo.model import EcloModel
from tests.fixtures.traffic import LA, hour_of_readings


def test_models_lists_vocabularies_and_metrics(api: httpx.Client, small_model: EcloModel) -> None:
    response = api.get("/api/models")
    assert response.status_code == 200
    models = {m["name"]: m for m in response.json()["models"]}
    assert set(models) == {"eclo", "congestion"}
    model = models["eclo"]
    assert model["name"] == "eclo" and model["version"] == small_model.version
    assert model["metrics"]["cv_rmsle"] == small_model.metadata["cv_rmsle"]
    assert model["allowed_values"]["weather"] == small_model.metadata["vocabularies"]["weather"]
    assert "중구" in model["allowed_values"]["district"]
    assert [band["level"] for band in model["risk_levels"]] == ["low", "moderate", "high", "severe"]


def test_unknown_model_is_404(api: httpx.Client) -> None:
    response = api.get("/api/models/nope")
    assert response.status_code == 404
    assert "available: congestion, eclo" in response.json()["error"]["message"]


def _register_and_ingest(client: TestClient, sensors: list[dict[str, Any]], end: datetime) -> str:
    """The network's sensors registered, and an hour of readings of the first stored: its id."""
    assert client.put("/api/traffic/sensors", json={"sensors": sensors}).status_code == 200
    sensor = sensors[0]["sensor_id"]
    ingested = client.post("/api/traffic/readings", json={"readings": hour_of_readings([sensor], end)})
    assert ingested.json()["accepted"] == 12, ingested.text
    return sensor


def test_congestion_lists_the_input_fields_of_its_request(app_client: TestClient) -> None:
    models = {m["name"]: m for m in app_client.get("/api/models").json()["models"]}
    fields = {f["name"]: f for f in models["congestion"]["input_fields"]}
    assert list(fields) == ["sensor_id", "recent", "neighbour_readings"]
    assert [name for name, f in fields.items() if f["required"]] == ["sensor_id"]
    reading = {f["name"]: f for f in fields["recent"]["items"]}
    assert {"timestamp", "speed_mph", "traffic_data"} <= set(reading) and reading["timestamp"]["required"]
    assert fields["neighbour_readings"]["items"] == fields["recent"]["items"]
    assert app_client.get("/api/models/congestion").json()["input_fields"] == models["congestion"]["input_fields"]
    for model in ("eclo", "congestion"):  # one shape: every field named, typed, described, required or not
        assert all({"name", "kind", "required", "description"} <= set(f) for f in models[model]["input_fields"])


def test_a_body_of_the_listed_required_fields_is_accepted(
    app_client: TestClient, network_sensors: list[dict[str, Any]]
) -> None:
    sensor = _register_and_ingest(app_client, network_sensors, datetime(2024, 6, 3, 9, 0, tzinfo=LA))
    fields = app_client.get("/api/models/congestion").json()["input_fields"]
    values = {"sensor_id": sensor}
    body = {f["name"]: values[f["name"]] for f in fields if f["required"]}
    answer = app_client.post("/api/predict/congestion", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["as_of"] == "2024-06-03T09:00:00-08:00"
    # `recent` of the listed reading fields: a time (with its zone, as the field says) and a speed
    (recent,) = [f for f in fields if f["name"] == "recent"]
    assert [f["name"] for f in recent["items"] if f["required"]] == ["timestamp"]
    readings = [{"timestamp": f"2024-06-03T08:{m:02d}:00+09:00", "speed_mph": 40.0 + m} for m in (0, 5, 10)]
    inline = app_client.post("/api/predict/congestion", json={**body, "recent": readings})
    assert inline.status_code == 200, inline.text
    assert inline.json()["as_of"] == "2024-06-03T08:10:00+09:00"
