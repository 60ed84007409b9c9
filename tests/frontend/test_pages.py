"""Every dashboard page with streamlit's AppTest, against the real API of the session stack (and against none)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from backend.dev.processes import free_port, wait_until
from frontend.client import ApiClient
from frontend.settings import get_settings
from tests.fixtures.dashboard import APP, point_at
from tests.fixtures.stack import PROJECT_ROOT
from tests.fixtures.traffic import LA, hour_of_readings

PAGES = ["views/predict.py", "views/batch.py", "views/risk_map.py", "views/system.py", "views/network.py",
         "views/sensor.py", "views/readings.py", "views/datasets.py", "views/explore.py", "views/keys.py",
         "views/models.py"]  # fmt: skip


def _open(page: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    if page != PAGES[0]:
        app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_predict_form_shows_a_number(live_api: str) -> None:
    app = _open("views/predict.py")
    assert app.title[0].value == "Predict accident severity"
    district = next(s for s in app.selectbox if s.label.startswith("시군구"))
    assert "중구 (Jung-gu)" in district.options and any(
        o.startswith("중구 ") and "(" not in o for o in district.options
    )
    app.button[0].click().run()
    assert not app.exception
    eclo = float(app.metric[0].value)
    assert 0 < eclo < 50
    badge = next(m.value for m in app.markdown if "chance of a death or serious injury" in m.value)
    assert "× the city's average" in badge and "risk" in badge
    assert any("Risk bands of the relative risk" in c.value for c in app.caption)


def test_predict_page_explains_the_chance_of_a_severe_outcome_first(live_api: str) -> None:
    app = _open("views/predict.py")
    app.button[0].click().run()
    assert not app.exception
    assert [t.label for t in app.tabs] == ["Why this chance", "Why this ECLO"]
    severe, eclo = (json.loads(c.proto.spec) for c in app.get("plotly_chart"))
    assert severe["layout"]["title"]["text"] == "What drove the chance of a death or serious injury"
    assert severe["layout"]["xaxis"]["title"]["text"] == "contribution (log-odds)"
    assert eclo["layout"]["title"]["text"] == "What drove the expected ECLO"
    answer = app.session_state["prediction"]  # the API's answer the page shows
    (bars,) = severe["data"]
    shown = dict(zip(bars["y"], bars["x"], strict=True))
    assert sorted(shown.values()) == sorted(c["contribution"] for c in answer["severe_explanation"])
    assert all(" · " in title for title in shown), shown  # the form's Korean · English names, not field names
    caption = next(c.value for c in app.caption if "log-odds of a death or serious injury" in c.value)
    assert "positive (red) raises the chance" in caption


def test_batch_of_100_reaches_100_percent(live_api: str, csv_rows: list[dict]) -> None:
    app = _open("views/batch.py")
    csv = pd.DataFrame(csv_rows[:100]).to_csv(index=False).encode("utf-8")
    app.file_uploader[0].upload("rows.csv", csv, "text/csv")
    app.run()
    assert app.subheader[0].value == "Preview: 100 rows"
    next(b for b in app.button if b.label == "Score 100 rows").click().run()
    assert not app.exception, [e.message for e in app.exception]
    for _ in range(100):  # AppTest does not fire `run_every`: each run is one poll of the fragment
        if app.success:
            break
        time.sleep(0.1)
        app.run()
    assert "Batch success: 100 results, 0 errors." in [s.value for s in app.success]
    (bar,) = app.get("progress")
    assert bar.value == 100 and bar.proto.text == "success: 100 of 100 rows"
    results = app.dataframe[-1].value
    assert len(results) == 100 and results["eclo"].notna().all() and results["p_severe"].between(0, 1).all()


def test_more_than_100_rows_are_explained(live_api: str, csv_rows: list[dict]) -> None:
    app = _open("views/batch.py")
    csv = pd.DataFrame(csv_rows[:150]).to_csv(index=False).encode("utf-8")
    app.file_uploader[0].upload("big.csv", csv, "text/csv")
    app.run()
    assert not app.exception
    assert "The file has 150 rows; a batch holds at most 100" in app.error[0].value


def test_risk_map_ranks_every_district(live_api: str) -> None:
    app = _open("views/risk_map.py")
    ranking = app.dataframe[0].value
    assert len(ranking) == 8 and ranking["relative risk"].is_monotonic_decreasing


def test_system_page_shows_health_and_models(live_api: str) -> None:
    app = _open("views/system.py")
    assert app.subheader[0].value.endswith("Service ok")
    components = set(app.dataframe[0].value["component"])
    assert {"model", "redis", "broker", "database", "workers"} <= components
    tables = [d.value for d in app.dataframe]
    eclo = next(t for t in tables if "RMSLE" in t.columns)
    assert eclo["evaluated on"].tolist() == ["2021-2021 after 2019-2020", "3-fold CV, all years"]
    assert (eclo["ratio"] < 1).all()
    severe = next(t for t in tables if "AUC" in t.columns)
    assert 0.5 < severe["AUC"].iloc[0] <= 1 and severe["Brier"].iloc[0] < severe["Brier constant"].iloc[0]
    (chart,) = app.get("plotly_chart")
    assert "Calibration on 2021-2021" in chart.proto.spec


def test_system_page_lists_the_latest_predictions_of_each_kind(
    live_api: str, api: httpx.Client, classic_row: dict, registered_sensors: list[str]
) -> None:
    sensor = registered_sensors[5]
    recent = hour_of_readings([sensor], datetime(2024, 6, 3, 9, 0, tzinfo=LA), base=38.0)
    asked = {
        "system-eclo": ("eclo", classic_row),
        "system-congestion": ("congestion", {"sensor_id": sensor, "recent": recent}),
    }
    for request_id, (model, body) in asked.items():
        assert api.post(f"/api/predict/{model}", json=body, headers={"X-Request-ID": request_id}).status_code == 200

    def landed() -> bool:
        items = api.get("/api/predictions", params={"size": 10}).json()["items"]
        return set(asked) <= {r["request_id"] for r in items}

    assert wait_until(landed, timeout=10)
    latest = _open("views/system.py").dataframe[-1].value
    answers = dict(zip(latest["model"], latest["answer"], strict=True))  # the newest of each model
    assert re.fullmatch(r"ECLO \d+\.\d\d · (low|moderate|high|severe) risk", answers["eclo"]), answers["eclo"]
    # an earlier test's batch may record a congestion row after ours, so the newest is any registered sensor's
    shown = re.fullmatch(r"sensor (\d+) at \+15/30/60 min: \d+/\d+/\d+ mph, \w+/\w+/\w+", answers["congestion"])
    assert shown and shown[1] in registered_sensors, answers["congestion"]


def test_the_system_page_exports_the_records_of_the_chosen_model_and_days(
    live_api: str, api: httpx.Client, classic_row: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for request_id in ("export-me", "export-me-too"):
        assert api.post("/api/predict/eclo", json=classic_row, headers={"X-Request-ID": request_id}).status_code == 200
    now = datetime.now(UTC).replace(tzinfo=None)
    dashboard = ApiClient(live_api)
    assert wait_until(lambda: b"export-me-too" in dashboard.predictions_csv("eclo", now - timedelta(hours=1)), 10)
    assert b"export-me" not in dashboard.predictions_csv("congestion", now - timedelta(hours=1))
    assert b"export-me" not in dashboard.predictions_csv("eclo", now - timedelta(days=2), now - timedelta(days=1))

    app = _open("views/system.py")
    assert [s.label for s in app.selectbox] == ["Model"] and "eclo" in app.selectbox[0].options
    (button,) = [b for b in app.get("download_button") if b.proto.label.startswith("Download records (CSV, ")]
    count = int(button.proto.label.rsplit(" ", 1)[1].rstrip(")").replace(",", ""))
    week = datetime.combine(now.date() - timedelta(days=7), datetime.min.time())  # the page's default days
    assert count >= 2 and count == dashboard.predictions(size=1, since=week)["total"]
    assert button.proto.deferred_file_id  # fetched with the dashboard's key when clicked

    app.date_input[0].set_value(now.date()).run()
    app.date_input[1].set_value(now.date() - timedelta(days=1)).run()
    assert any("after the last" in w.value for w in app.warning)
    assert not [b for b in app.get("download_button") if b.proto.label.startswith("Download records")]

    monkeypatch.setenv("RECORDS_EXPORT_MAX_ROWS", "1")  # more records than the dashboard hands out
    get_settings.cache_clear()
    app = _open("views/system.py")
    assert not [b for b in app.get("download_button") if b.proto.label.startswith("Download records")]
    (hint,) = [i.value for i in app.info if "/api/predictions.csv?since=" in i.value]
    assert f"{count:,} records" in hint


def test_the_keys_page_says_keys_are_off(live_api: str) -> None:
    app = _open("views/keys.py")
    assert any("only while AUTH_ENABLED=true" in e.value for e in app.error), [e.value for e in app.error]


@pytest.mark.parametrize("page", PAGES)
def test_api_down_shows_a_message_and_a_retry_button(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_ATTEMPTS", "1")  # the retries themselves are tested in test_client.py
    point_at(monkeypatch, f"http://127.0.0.1:{free_port()}")
    try:
        app = _open(page)
        assert "The prediction API is not reachable" in app.error[0].value
        assert [b.label for b in app.button] == ["Retry"]
    finally:
        get_settings.cache_clear()


def test_the_dashboard_needs_nothing_of_the_backend() -> None:
    sources = [p.read_text() for p in (PROJECT_ROOT / "frontend").rglob("*.py")]
    assert sources and not any("import backend" in s or "from backend" in s for s in sources)
