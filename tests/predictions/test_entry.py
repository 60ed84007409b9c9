"""The one prediction entry: every model kind served answers in one shape, the same in a single answer, a batch row
and a dataset result row (a row is the single answer plus its `index`); inline readings obey the stored ones' rule."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from fastapi.testclient import TestClient

from backend.ml.congestion.model import CongestionModel
from backend.tasks.batches import run_batch
from backend.tasks.datasets import run_chunk
from backend.wiring import Resources
from tests.fixtures.datasets import dacon_file, upload

pytestmark = pytest.mark.app

LA = ZoneInfo("America/Los_Angeles")


def _readings(count: int, speed: float = 55.0) -> list[dict[str, Any]]:
    end = datetime(2024, 4, 2, 8, 0, tzinfo=LA)
    return [{"timestamp": (end - timedelta(minutes=5 * i)).isoformat(), "speed_mph": speed} for i in range(count)][::-1]


def _body_of(kind: str, resources: Resources, csv_rows: list[dict]) -> dict[str, Any]:
    """A valid single-prediction body for a served model of `kind`."""
    if kind == "eclo":
        return dict(csv_rows[0])
    if kind == "congestion":
        model = resources.registry.get("congestion")
        assert isinstance(model, CongestionModel)
        return {"sensor_id": model.sensor_ids[0], "recent": _readings(12)}
    if kind == "echo":
        return {"x": 21}
    raise AssertionError(f"no test body for the kind {kind!r}: add one here")


def test_a_batch_row_is_the_single_answer_plus_its_index_for_every_kind(
    app_client: TestClient, app_resources: Resources, csv_rows: list[dict]
) -> None:
    models = app_client.get("/api/models").json()["models"]
    assert {m["kind"] for m in models} >= {"eclo", "congestion", "echo"}
    for info in models:
        body = _body_of(info["kind"], app_resources, csv_rows)
        single = app_client.post(f"/api/predict/{info['name']}", json=body)
        assert single.status_code == 200, (info["name"], single.text)
        answer = single.json()
        accepted = app_client.post(f"/api/predict/{info['name']}/batch", json={"items": [body, body]})
        assert accepted.status_code == 202, accepted.text
        assert run_batch(app_resources, accepted.json()["batch_id"])["status"] == "success"
        rows = app_client.get(f"/api/predict/batch/{accepted.json()['batch_id']}/results").json()["results"]
        assert [row["index"] for row in rows] == [0, 1]
        for row in rows:
            assert set(row) == {*answer, "index"}, info["name"]
            assert {k: v for k, v in row.items() if k not in ("index", "cached")} == {
                k: v for k, v in answer.items() if k != "cached"
            }, info["name"]


@pytest.mark.stack  # an upload is checked in a spawned process of its own
def test_a_dataset_result_row_is_the_single_answer_plus_its_index(
    app_client: TestClient, app_resources: Resources, tmp_path: Path
) -> None:
    uploaded = upload(app_client, dacon_file(tmp_path, 30))
    assert uploaded.status_code == 201, uploaded.text
    dataset_id = uploaded.json()["id"]
    job = app_client.post(f"/api/datasets/{dataset_id}/predict").json()
    for chunk in range(job["chunks"]):
        run_chunk(app_resources, job["job_id"], chunk)
    files = app_resources.dataset_files
    stored = dict(files.iter_results(dataset_id, job["job_id"], job["chunks"]))
    rows = {index: row for index, row, _ in files.iter_rows(dataset_id)}
    index = next(i for i, outcome in stored.items() if "error" not in outcome)
    answer = app_client.post("/api/predict/eclo", json=rows[index]).json()
    assert set(stored[index]) == set(answer)
    del answer["cached"], stored[index]["cached"]
    assert stored[index] == answer


def test_inline_readings_obey_the_minimum_of_stored_ones(app_client: TestClient, app_resources: Resources) -> None:
    minimum = app_resources.settings.congestion_min_readings
    model = app_resources.registry.get("congestion")
    assert isinstance(model, CongestionModel) and minimum >= 2
    sensor = model.sensor_ids[0]
    short = app_client.post("/api/predict/congestion", json={"sensor_id": sensor, "recent": _readings(minimum - 1)})
    assert short.status_code == 422
    error = short.json()["error"]
    assert error["details"][0]["field"] == "recent"
    assert f"holds {minimum - 1} reading(s)" in error["message"] and f"at least {minimum}" in error["message"]
    missing = _readings(minimum + 2)
    for reading in missing[:3]:
        reading["speed_mph"] = 0  # a missing reading, as in METR-LA: not counted
    assert app_client.post("/api/predict/congestion", json={"sensor_id": sensor, "recent": missing}).status_code == 422
    enough = app_client.post("/api/predict/congestion", json={"sensor_id": sensor, "recent": _readings(minimum)})
    assert enough.status_code == 200 and enough.json()["readings_used"] == minimum


def test_every_model_has_the_one_route_and_unknown_ones_are_404(app_client: TestClient) -> None:
    assert app_client.post("/api/predict/echo", json={"x": 2}).json() == {
        "doubled": 4,
        "model_version": "echo-1",
        "cached": False,
    }
    refused = app_client.post("/api/predict/echo", json={"x": "a"})
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "x"
    unknown = app_client.post("/api/predict/nope", json={})
    assert unknown.status_code == 404 and "available: congestion, echo, eclo" in unknown.json()["error"]["message"]
    paths = app_client.get("/openapi.json").json()["paths"]
    assert "/api/predict/{model}" in paths
    assert "/api/predict/eclo" not in paths and "/api/predict/congestion" not in paths


def test_an_oversized_collection_is_refused_before_its_items_are_validated(
    app_client: TestClient, app_resources: Resources
) -> None:
    model = app_resources.registry.get("congestion")
    assert isinstance(model, CongestionModel)
    keys = {f"s{i:06d}": [] for i in range(150_000)}  # under REQUEST_MAX_JSON_MEMBERS: the serving counts them
    body = orjson.dumps({"sensor_id": model.sensor_ids[0], "recent": _readings(12), "neighbour_readings": keys})
    assert len(body) < app_resources.settings.request_max_bytes
    headers = {"content-type": "application/json"}
    single = app_client.post("/api/predict/congestion", content=body, headers=headers)
    assert single.status_code == 413 and single.json()["error"]["details"][0]["field"] == "neighbour_readings"
    items = b'{"items": [{"sensor_id": "x"}, ' + body + b"]}"
    batch = app_client.post("/api/predict/congestion/batch", content=items, headers=headers)
    assert batch.status_code == 413 and batch.json()["error"]["details"][0]["field"] == "items[1].neighbour_readings"
    wide = {"sensor_id": model.sensor_ids[0], "recent": [{f"k{i}": 1 for i in range(100)}] * 3}
    refused = app_client.post("/api/predict/congestion", json=wide)
    assert refused.status_code == 413 and refused.json()["error"]["details"][0]["field"] == "recent[0]"


@pytest.mark.parametrize("stamp", ["9999-12-31T23:50:00+00:00", 1e15, -1e12, "0001-01-01T00:00:00Z"])
def test_a_reading_time_out_of_range_is_a_422_not_a_500(
    app_client: TestClient, app_resources: Resources, stamp: object
) -> None:
    model = app_resources.registry.get("congestion")
    assert isinstance(model, CongestionModel)
    recent = _readings(4)
    recent[-1]["timestamp"] = stamp
    answer = app_client.post("/api/predict/congestion", json={"sensor_id": model.sensor_ids[0], "recent": recent})
    assert answer.status_code == 422, answer.text
    assert "readings[3].timestamp" in {d["field"] for d in answer.json()["error"]["details"]}  # the model's name


def test_a_huge_integer_time_in_a_batch_is_a_422_not_a_500(app_client: TestClient, app_resources: Resources) -> None:
    """The batch route's JSON keeps 10**400 an integer (the single route's parser makes it a float)."""
    model = app_resources.registry.get("congestion")
    assert isinstance(model, CongestionModel)
    recent = _readings(4)
    recent[-1]["timestamp"] = 10**400
    body = json.dumps({"items": [{"sensor_id": model.sensor_ids[0], "recent": recent}]})
    answer = app_client.post("/api/predict/congestion/batch", content=body,
                             headers={"content-type": "application/json"})  # fmt: skip
    assert answer.status_code == 422, answer.text
