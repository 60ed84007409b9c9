"""A sample day of readings (the demo's, stored by the API), and the health report naming a running demo feed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from fastapi.testclient import TestClient

from backend.core.config import Settings
from backend.ml.congestion.model import CongestionModel
from backend.services.demo_feed import DemoFeed
from backend.tasks.batches import run_batch
from backend.wiring import Resources


def test_a_sample_day_is_stored_once_and_the_network_forecasts_from_it(
    app_client: TestClient, network_sensors: list[dict[str, Any]]
) -> None:
    assert app_client.put("/api/traffic/sensors", json={"sensors": network_sensors}).status_code == 200
    first = app_client.post("/api/traffic/readings/sample", params={"hours": 2})
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 24 * len(network_sensors), "duplicates": 0, "rejected": []}
    again = app_client.post("/api/traffic/readings/sample", params={"hours": 3}).json()
    assert again["accepted"] == 12 * len(network_sensors) and again["duplicates"] == 24 * len(network_sensors)
    network = app_client.get("/api/traffic/forecast").json()
    assert len(network["forecasts"]) == len(network_sensors)
    newest = datetime.fromisoformat(network["as_of"].replace("Z", "+00:00"))
    assert timedelta(0) <= datetime.now(UTC) - newest.astimezone(UTC) < timedelta(minutes=5)


def test_every_forecast_carries_its_band_single_batch_and_network(
    app_client: TestClient, app_resources: Resources, network_sensors: list[dict[str, Any]]
) -> None:
    assert app_client.put("/api/traffic/sensors", json={"sensors": network_sensors}).status_code == 200
    assert app_client.post("/api/traffic/readings/sample", params={"hours": 2}).status_code == 200
    sensors = [s["sensor_id"] for s in network_sensors]
    single = app_client.post("/api/predict/congestion", json={"sensor_id": sensors[0]}).json()
    batch = app_client.post("/api/predict/congestion/batch", json={"items": [{"sensor_id": s} for s in sensors]})
    done = run_batch(app_resources, batch.json()["batch_id"])
    assert done["status"] == "success", done
    rows = app_client.get(f"/api/predict/batch/{batch.json()['batch_id']}/results").json()["results"]
    network = app_client.get("/api/traffic/forecast").json()["forecasts"]
    forecasts = [f for answer in [single, *rows, *network] for f in answer["forecasts"]]
    assert len(forecasts) == 3 * (1 + 2 * len(sensors))
    assert all(f["speed_mph_p10"] <= f["speed_mph"] <= f["speed_mph_p90"] for f in forecasts), forecasts
    assert any(f["speed_mph_p10"] < f["speed_mph"] < f["speed_mph_p90"] for f in forecasts)


def test_hours_out_of_range_are_refused_by_name(app_client: TestClient) -> None:
    for hours in (0, 169, "many"):
        answer = app_client.post("/api/traffic/readings/sample", params={"hours": hours})
        assert answer.status_code == 422 and answer.json()["error"]["details"][0]["field"] == "hours", answer.text


def test_health_names_a_running_demo_feed(
    app_client: TestClient, app_settings: Settings, congestion_model_dir: Path
) -> None:
    assert "demo_feed" not in app_client.get("/health").json()["components"]
    client = redis.Redis.from_url(app_settings.redis_url)
    DemoFeed(app_settings, client, CongestionModel.load(congestion_model_dir), "on (test)").beat()
    time.sleep(1.1)  # the health report is computed at most once a second
    demo = app_client.get("/health").json()["components"]["demo_feed"]
    assert demo["status"] == "ok" and "DEMO_FEED=off" in demo["detail"]
