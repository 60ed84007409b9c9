"""The congestion pages with streamlit's AppTest against the real API of the session stack, readings loaded."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures.auth import Secured
from tests.fixtures.dashboard import APP, point_at
from tests.fixtures.traffic import LA, flat

END = datetime(2025, 10, 6, 8, 0, tzinfo=LA)  # after the API tests' readings: the network's newest


@pytest.fixture(scope="module")
def loaded(api: httpx.Client, registered_sensors: list[str]) -> list[str]:
    """A day of 5-minute readings for every sensor up to END."""
    readings = [flat(sensor, END - timedelta(minutes=5 * back), 30.0 + (back * 7 + i * 3) % 35)
                for i, sensor in enumerate(registered_sensors) for back in range(288)]  # fmt: skip
    for start in range(0, len(readings), 10_000):
        answer = api.post("/api/traffic/readings", json={"readings": readings[start : start + 10_000]})
        assert answer.status_code == 200 and not answer.json()["rejected"], answer.text
    return registered_sensors


def _open(page: str, **state: Any) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    for key, value in state.items():
        app.session_state[key] = value
    app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _map_args(app: AppTest) -> dict[str, Any]:
    (component,) = [e for e in app.get("component_instance") if "st_folium" in e.proto.component_name]
    return json.loads(component.proto.json_args)


def test_the_network_map_has_one_marker_per_sensor_and_needs_no_cdn(live_api: str, loaded: list[str]) -> None:
    app = _open("views/network.py")
    args = _map_args(app)
    assert args["script"].count('"Point"') == len(loaded)
    assert all(f'"sensor_id": "{sensor}"' in args["script"] for sensor in loaded)
    assert args["js_links"] and not [link for link in args["js_links"] + args["css_links"] if "//" in link]
    counts = {m.label: int(m.value) for m in app.metric}
    assert sum(counts.values()) == len(loaded) and counts["no data"] == 0
    assert not [i for i in app.info if "No readings" in i.value]
    ahead = _open("views/network.py", horizon="+60 min")
    assert sum(int(m.value) for m in ahead.metric) == len(loaded)


def test_a_network_without_readings_says_how_to_send_some(
    secured: Secured, network_sensors: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with secured.client(secured.keys["all"]) as admin:
        assert admin.put("/api/traffic/sensors", json={"sensors": network_sensors}).status_code == 200
    monkeypatch.setenv("API_KEY", secured.keys["all"])
    point_at(monkeypatch, secured.url)
    app = _open("views/network.py")
    assert any("No readings are stored yet" in i.value and "backend.cli.replay" in i.value for i in app.info)
    assert {m.label: int(m.value) for m in app.metric}["no data"] == len(network_sensors)


def test_the_sensor_page_draws_history_usual_speeds_and_the_forecast(live_api: str, loaded: list[str]) -> None:
    sensor = loaded[1]
    app = _open("views/sensor.py", sensor_id=sensor)
    assert app.selectbox[0].value == sensor
    (chart,) = app.get("plotly_chart")
    traces = {t.get("name"): t for t in json.loads(chart.proto.spec)["data"]}
    assert len(traces[f"sensor {sensor}"]["x"]) == 288
    assert len(traces["forecast"]["y"]) == 4 and traces["usual (median)"]["y"]
    data = json.loads(chart.proto.spec)["data"]
    band_at = next(i for i, t in enumerate(data) if t.get("name") == "forecast band (10th-90th pct)")
    low, high, middle = data[band_at]["y"], data[band_at - 1]["y"], traces["forecast"]["y"]
    assert all(lo <= mid <= hi for lo, mid, hi in zip(low, middle, high, strict=True)) and low[1] < high[1]
    assert [m.label for m in app.metric][2:] == ["+15 min", "+30 min", "+60 min"]
    app.toggle[0].set_value(True).run()
    (chart,) = app.get("plotly_chart")
    assert any(str(t.get("name")).startswith("neighbour ") for t in json.loads(chart.proto.spec)["data"])


def test_an_uploaded_csv_of_500_readings_with_3_bad_reports_497_and_the_3_rows(
    live_api: str, loaded: list[str]
) -> None:
    day = datetime(2025, 7, 1, 0, 0)
    rows = [{"sensor_id": loaded[i % len(loaded)], "timestamp": (day + timedelta(minutes=5 * (i // len(loaded)))
             ).isoformat(), "speed_mph": 40 + i % 20} for i in range(500)]  # fmt: skip
    rows[10]["speed_mph"] = 130
    rows[200]["sensor_id"] = "no-such-sensor"
    rows[499]["timestamp"] = "yesterday"
    app = _open("views/readings.py")
    app.selectbox[0].set_value("America/Los_Angeles").run()
    app.file_uploader[0].upload("readings.csv", pd.DataFrame(rows).to_csv(index=False).encode(), "text/csv")
    app.run()
    assert app.subheader[0].value == "Preview: 500 readings"
    next(b for b in app.button if b.label == "Send 500 readings").click().run()
    assert not app.exception, [e.message for e in app.exception]
    counts = {m.label: m.value for m in app.metric}
    assert counts == {"accepted": "497", "duplicates": "0", "rejected": "3"}
    refused = app.dataframe[-1].value
    assert list(refused["line"]) == [12, 202, 501]
    assert "speed_mph" in refused["reason"][0] and "no-such-sensor" in refused["reason"][1]
    window = {"since": "2025-07-01T00:00:00-07:00", "until": "2025-07-02T00:00:00-07:00"}
    stored = httpx.get(f"{live_api}/api/traffic/sensors/{loaded[0]}/readings", params=window).json()
    assert stored["total"] == len([r for r in rows[:499] if r["sensor_id"] == loaded[0]])
