"""The congestion service over a real uvicorn API, Celery worker and feed consumer (PostgreSQL when it answers):
sensors, readings in (REST), current state, history pages, congestion predictions single and batch."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.dev.processes import wait_until
from tests.api.routes.test_health import _sample
from tests.fixtures.batches import submit, wait_for_batch
from tests.fixtures.traffic import LA, flat, hour_of_readings, nested


@pytest.fixture(scope="module")
def neighbours(congestion_model_dir: Path) -> dict[str, list[str]]:
    return json.loads((congestion_model_dir / "metadata.json").read_text())["neighbours"]


@pytest.fixture(scope="module")
def sensors(registered_sensors: list[str]) -> list[str]:
    return registered_sensors


def _ingest(api: httpx.Client, readings: list[dict[str, Any]]) -> dict[str, Any]:
    response = api.post("/api/traffic/readings", json={"readings": readings})
    assert response.status_code == 200, response.text
    return response.json()


def test_sensors_are_listed_with_free_flow_speeds(api: httpx.Client, sensors: list[str], network_sensors: list) -> None:
    listed = {s["sensor_id"]: s for s in api.get("/api/traffic/sensors").json()}
    assert set(sensors) <= set(listed)
    assert listed[sensors[0]]["free_flow_mph"] == network_sensors[0]["free_flow_mph"]
    bad = api.put("/api/traffic/sensors", json={"sensors": [{"sensor_id": "x", "latitude": 95, "longitude": 0}]})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "sensors[0].latitude"


def test_flat_and_nested_in_one_call_and_a_resent_reading_is_a_duplicate(api: httpx.Client, sensors: list) -> None:
    moment = datetime(2024, 1, 10, 8, 0, tzinfo=LA)
    readings = [flat(sensors[0], moment, 50.0, volume=800, occupancy=6.0), nested(sensors[1], moment, 45.0)]
    assert _ingest(api, readings) == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert _ingest(api, readings[:1]) == {"accepted": 0, "duplicates": 1, "rejected": []}
    window = {"since": moment.isoformat(), "until": (moment + timedelta(minutes=1)).isoformat()}
    stored = api.get(f"/api/traffic/sensors/{sensors[0]}/readings", params=window)
    body = stored.json()
    assert body["total"] == 1
    assert body["items"][0]["timestamp"] == "2024-01-10T08:00:00-08:00"  # in the zone it came in
    assert body["items"][0]["volume"] == 800.0


def test_each_invalid_reading_is_refused_by_index_and_the_valid_ones_are_stored(
    api: httpx.Client, sensors: list
) -> None:
    moment = datetime(2024, 1, 11, 9, 0, tzinfo=LA)
    readings = [flat(sensors[0], moment, 50.0), flat(sensors[0], moment + timedelta(minutes=5), 130.0),
                flat("no-such-sensor", moment, 40.0), flat(sensors[1], moment, 44.0),
                {"sensor_id": sensors[1], "timestamp": "2024-01-11T09:05:00", "speed_mph": 40.0}, "junk"]  # fmt: skip
    answer = _ingest(api, readings)
    assert answer["accepted"] == 2 and answer["duplicates"] == 0
    assert [r["index"] for r in answer["rejected"]] == [1, 2, 4, 5]
    messages = {r["index"]: r["message"] for r in answer["rejected"]}
    assert "speed_mph" in messages[1] and "no-such-sensor" in messages[2] and "time zone" in messages[4]
    day = api.get("/api/traffic/historical/2024-01-11", params={"utc_offset_minutes": -480}).json()
    assert day["total"] == 2


def test_whole_calls_out_of_bounds_are_refused(api: httpx.Client, sensors: list) -> None:
    assert api.post("/api/traffic/readings", json={"readings": []}).status_code == 422
    too_many = api.post("/api/traffic/readings", json={"readings": [{}] * 10_001})
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_large"
    assert api.post("/api/traffic/readings", content=b"{not json").status_code == 422


def test_history_pages_carry_totals(api: httpx.Client, sensors: list) -> None:
    end = datetime(2024, 1, 12, 10, 0, tzinfo=LA)
    assert _ingest(api, hour_of_readings(sensors[:3], end))["accepted"] == 36
    day = api.get("/api/traffic/historical/2024-01-12", params={"utc_offset_minutes": -480, "size": 10, "page": 4})
    assert day.json()["total"] == 36 and day.json()["pages"] == 4 and len(day.json()["items"]) == 6
    one = api.get("/api/traffic/historical/2024-01-12",
                  params={"utc_offset_minutes": -480, "sensor_id": sensors[1], "size": 5}).json()  # fmt: skip
    assert one["total"] == 12 and {r["sensor_id"] for r in one["items"]} == {sensors[1]}
    assert api.get("/api/traffic/sensors/nope/readings").status_code == 404
    assert api.get("/api/traffic/sensors/x/readings", params={"since": "2024-01-12T10:00:00"}).status_code in (404, 422)


def _walk(api: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    pages = [api.get(path, params=params).json()]
    while pages[-1]["next"] is not None:
        pages.append(api.get(path, params={**params, "cursor": pages[-1]["next"]}).json())
    return pages


def test_history_pages_go_on_by_cursor_each_reading_once_in_order(api: httpx.Client, sensors: list) -> None:
    end = datetime(2024, 1, 13, 10, 0, tzinfo=LA)
    assert _ingest(api, hour_of_readings(sensors[:3], end))["accepted"] == 36  # three sensors at each time
    day = _walk(api, "/api/traffic/historical/2024-01-13", {"utc_offset_minutes": -480, "size": 5})
    walked = [(datetime.fromisoformat(r["timestamp"]), r["sensor_id"]) for p in day for r in p["items"]]
    assert walked == sorted(walked) and len(set(walked)) == 36 and len(day) == 8
    assert [p["page"] for p in day] == [1] + [None] * 7 and {p["total"] for p in day} == {36}
    window = {"since": (end - timedelta(minutes=30)).isoformat(), "until": end.isoformat(), "size": 4}
    one = _walk(api, f"/api/traffic/sensors/{sensors[2]}/readings", window)
    stamps = [r["timestamp"] for p in one for r in p["items"]]
    assert len(stamps) == 6 and stamps == sorted(stamps) and one[0]["total"] == 6 and one[-1]["next"] is None
    bad = api.get(f"/api/traffic/sensors/{sensors[2]}/readings", params={"cursor": "junk"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "cursor"
    deep = api.get("/api/traffic/historical/2024-01-13", params={"page": 12, "size": 1000})
    assert deep.status_code == 422 and deep.json()["error"]["details"][0]["field"] == "page"


def test_current_state_shows_each_sensors_newest_reading_and_level(api: httpx.Client, sensors: list) -> None:
    newest = datetime(2025, 6, 1, 7, 0, tzinfo=LA)
    _ingest(api, [flat(sensors[-1], newest - timedelta(minutes=5), 60.0), flat(sensors[-1], newest, 12.0)])
    state = {s["sensor_id"]: s for s in api.get("/api/traffic/current").json()}
    latest = state[sensors[-1]]["latest"]
    assert latest["speed_mph"] == 12.0 and latest["level"] == "severe"
    assert latest["timestamp"] == "2025-06-01T07:00:00-08:00" and latest["age_seconds"] > 0


def test_a_prediction_from_stored_readings_equals_one_from_the_same_readings_inline(
    api: httpx.Client, sensors: list, neighbours: dict[str, list[str]]
) -> None:
    sensor = sensors[2]
    group = [sensor, *neighbours[sensor]]
    end = datetime(2024, 2, 5, 17, 30, tzinfo=LA)
    readings = hour_of_readings(group, end)
    _ingest(api, readings)
    stored = api.post("/api/predict/congestion", json={"sensor_id": sensor})
    assert stored.status_code == 200, stored.text
    by_sensor: dict[str, list] = {}
    for r in readings:
        by_sensor.setdefault(r["sensor_id"], []).append({"timestamp": r["timestamp"], "speed_mph": r["speed_mph"]})
    inline = api.post("/api/predict/congestion", json={
        "sensor_id": sensor, "recent": by_sensor.pop(sensor), "neighbour_readings": by_sensor})  # fmt: skip
    assert inline.status_code == 200, inline.text
    a, b = stored.json(), inline.json()
    assert a["forecasts"] == b["forecasts"] and a["as_of"] == "2024-02-05T17:30:00-08:00"
    assert [f["horizon_minutes"] for f in a["forecasts"]] == [15, 30, 60]
    assert a["forecasts"][0]["at"] == "2024-02-05T17:45:00-08:00"
    alone = api.post("/api/predict/congestion", json={"sensor_id": sensor, "recent": b_readings(readings, sensor)})
    assert alone.json()["forecasts"] != a["forecasts"]  # the stored neighbours were used
    again = api.post("/api/predict/congestion", json={"sensor_id": sensor})
    assert again.json()["cached"] is True and again.json()["forecasts"] == a["forecasts"]


def b_readings(readings: list[dict[str, Any]], sensor: str) -> list[dict[str, Any]]:
    return [r for r in readings if r["sensor_id"] == sensor]


def test_too_few_readings_and_unknown_sensors_are_refused(api: httpx.Client, sensors: list) -> None:
    sensor = sensors[-2]
    _ingest(api, [flat(sensor, datetime(2024, 3, 1, 8, 0, tzinfo=LA), 50.0)])
    few = api.post("/api/predict/congestion", json={"sensor_id": sensor})
    assert few.status_code == 422
    assert "has 1 reading(s)" in few.json()["error"]["message"] and "at least 3" in few.json()["error"]["message"]
    unknown = api.post("/api/predict/congestion", json={"sensor_id": "nope"})
    assert unknown.status_code == 404 and "unknown sensor" in unknown.json()["error"]["message"]
    assert api.post("/api/predict/congestion", json={"sensor_id": 5}).status_code == 422


def test_a_congestion_batch_of_100_through_a_worker_equals_single_predictions(api: httpx.Client, sensors: list) -> None:
    end = datetime(2024, 4, 2, 8, 0, tzinfo=LA)
    pool = sensors[:20]  # the last ones hold other tests' lone readings
    _ingest(api, hour_of_readings(pool, end))
    items: list[dict[str, Any]] = []
    for i in range(100):
        sensor = pool[i % len(pool)]
        if i % 2:
            items.append({"sensor_id": sensor})
        else:
            shift = end - timedelta(minutes=5 * (i % 7))
            items.append({"sensor_id": sensor, "recent": hour_of_readings([sensor], shift, base=40.0 + i % 9)})
    items[13] = {"sensor_id": "nope"}
    accepted = submit(api, items, model="congestion")
    result = wait_for_batch(api, accepted["batch_id"], timeout=60)
    assert result["status"] == "partial" and [e["index"] for e in result["errors"]] == [13]
    assert len(result["results"]) == 99
    for row in result["results"][:40]:
        single = api.post("/api/predict/congestion", json=items[row["index"]]).json()
        assert set(row) == {*single, "index"} and row["cached"] is False
        assert row["forecasts"] == single["forecasts"] and row["as_of"] == single["as_of"]


def test_metrics_count_readings_by_outcome_and_congestion_predictions(api: httpx.Client, sensors: list) -> None:
    before = api.get("/metrics").text
    moment = datetime(2024, 5, 6, 8, 0, tzinfo=LA)
    readings = [flat(sensors[0], moment, 50.0), flat(sensors[0], moment, 50.0), flat(sensors[0], moment, 500.0)]
    _ingest(api, readings)
    recent = [flat(sensors[0], moment - timedelta(minutes=5 * i), 50.0) for i in range(4)]
    assert api.post("/api/predict/congestion", json={"sensor_id": sensors[0], "recent": recent}).status_code == 200
    after = api.get("/metrics").text

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert delta("readings_total", outcome="accepted", source="rest") == 1
    assert delta("readings_total", outcome="duplicate", source="rest") == 1
    assert delta("readings_total", outcome="rejected", source="rest") == 1
    assert delta("predictions_total", model="congestion") == 1
    assert "readings_feed_lag_seconds" in after


def test_a_batch_refuses_a_number_beyond_64_bits_naming_the_item(api: httpx.Client, sensors: list) -> None:
    body = '{"items": [{"sensor_id": "%s", "recent": [{"timestamp": "2024-01-01T00:00:00Z", "speed_mph": %d}]}]}'
    response = api.post("/api/predict/congestion/batch", content=body % (sensors[0], 10**30),
                        headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == [{"field": "items[0]"}]


def test_a_sensor_names_its_neighbours_and_its_weekday_profile(
    api: httpx.Client, sensors: list, neighbours: dict[str, list[str]]
) -> None:
    sensor = sensors[3]
    detail = api.get(f"/api/traffic/sensors/{sensor}").json()
    assert detail["neighbours"] == neighbours[sensor] and detail["latitude"] is not None
    assert api.get("/api/traffic/sensors/nope").status_code == 404
    mondays = [datetime(2025, 8, 4, 8, 0, tzinfo=LA), datetime(2025, 8, 11, 8, 0, tzinfo=LA)]
    readings = [flat(sensor, day + timedelta(minutes=5 * k), base + 2 * k)
                for day, base in zip(mondays, (50.0, 40.0), strict=True) for k in range(3)]  # fmt: skip
    readings.append(flat(sensor, datetime(2025, 8, 12, 9, 0, tzinfo=LA), 33.0))  # a Tuesday, the newest
    _ingest(api, readings)
    monday = api.get(f"/api/traffic/sensors/{sensor}/profile", params={"weekday": 0}).json()
    assert monday["days"] == 2 and len(monday["bins"]) == 1
    assert monday["bins"][0] == {"minute_of_day": 480, "p10": 40.0, "median": 50.0, "p90": 54.0, "readings": 6}
    newest_day = api.get(f"/api/traffic/sensors/{sensor}/profile").json()
    assert newest_day["weekday"] == 1 and newest_day["bins"][0]["minute_of_day"] == 540
    assert api.get(f"/api/traffic/sensors/{sensor}/profile", params={"weekday": 7}).status_code == 422


def test_the_network_forecast_answers_each_sensor_as_a_single_prediction(api: httpx.Client, sensors: list) -> None:
    end = datetime(2025, 9, 1, 8, 0, tzinfo=LA)  # after every other test's readings: the network's newest
    _ingest(api, hour_of_readings(sensors[:-2], end))
    _ingest(api, hour_of_readings([sensors[-2]], end - timedelta(minutes=30)))
    _ingest(api, [flat(sensors[-1], end - timedelta(minutes=5), 50.0), flat(sensors[-1], end, 48.0)])
    network = api.get("/api/traffic/forecast").json()
    assert datetime.fromisoformat(network["as_of"]) == end
    by_sensor = {f["sensor_id"]: f for f in network["forecasts"]}
    assert set(by_sensor) == set(sensors[:-1])
    for sensor in sensors[:-1]:
        single = api.post("/api/predict/congestion", json={"sensor_id": sensor}).json()
        assert by_sensor[sensor]["forecasts"] == single["forecasts"] and by_sensor[sensor]["as_of"] == single["as_of"]
    (refused,) = [u for u in network["unavailable"] if u["sensor_id"] == sensors[-1]]
    assert "has 2 reading(s)" in refused["reason"]


def test_each_congestion_prediction_is_recorded_with_the_body_and_answer_whole(
    api: httpx.Client, sensors: list, neighbours: dict[str, list[str]]
) -> None:
    sensor = sensors[3]
    end = datetime(2024, 2, 12, 8, 0, tzinfo=LA)
    _ingest(api, hour_of_readings([sensor, *neighbours[sensor]], end))
    recent = hour_of_readings([sensor], end, base=45.0)
    prefix = f"cong-{uuid.uuid4().hex[:8]}"
    asked = {
        f"{prefix}-{i}": body
        for i, body in enumerate(
            ({"sensor_id": sensor}, {"sensor_id": sensor}, {"sensor_id": sensor, "recent": recent})
        )
    }
    answers = {}
    for request_id, body in asked.items():
        response = api.post("/api/predict/congestion", json=body, headers={"X-Request-ID": request_id})
        assert response.status_code == 200, response.text
        answers[request_id] = response.json()

    def recorded() -> dict[str, dict[str, Any]]:
        items = api.get("/api/predictions", params={"model": "congestion", "size": 200}).json()["items"]
        return {r["request_id"]: r for r in items if r["request_id"] in asked}

    assert wait_until(lambda: len(recorded()) == 3, timeout=10)
    me = api.get("/api/keys/me").json()["key_id"]
    for request_id, record in recorded().items():
        answer = answers[request_id]
        assert record["inputs"] == asked[request_id]
        assert record["cached"] is answer.pop("cached")
        assert record["output"] == answer and record["output"]["sensor_id"] == sensor
        assert record["eclo"] is None and record["risk_level"] is None and record["key_id"] == me
        assert record["model_version"] == answer["model_version"]
    assert recorded()[f"{prefix}-1"]["cached"] is True  # the second of the same: a cache hit, recorded as one
