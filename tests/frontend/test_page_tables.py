"""What the pages' tables and captions show, with streamlit's AppTest against the session stack: a dash for what is
missing (never `None`), times on the clock in UTC, a batch's answers before its columns, the risk map's labels."""

from __future__ import annotations

import json
import re
import time

import httpx
import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.fixtures.dashboard import APP

UTC_SECONDS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def _open(page: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page(page).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_the_system_page_shows_a_dash_where_a_value_is_missing(
    live_api: str, api: httpx.Client, classic_row: dict
) -> None:
    assert api.post("/api/predict/eclo", json=classic_row).status_code == 200
    app = _open("views/system.py")
    assert app.dataframe and all(d.proto.placeholder == "–" for d in app.dataframe)
    components = app.dataframe[0].value
    assert components["latency ms"].isna().any()  # the model's check is not timed: shown as "–"
    latest = app.dataframe[-1].value
    assert list(latest.columns) == ["at", "model", "answer", "model version", "cached", "key"]
    assert latest["at"].str.fullmatch(UTC_SECONDS).all(), latest["at"].tolist()
    errors = next(d.value for d in app.dataframe if "measure" in d.value.columns)  # the congestion model's
    assert list(errors.columns[:4]) == ["measure", "horizon", "model", "copy-last"] and len(errors) <= 9
    trained = [c.value for c in app.caption if c.value.startswith("trained ")]
    assert trained and all(re.match(r"trained \d{4}-\d\d-\d\d \d\d:\d\d UTC on ", t) for t in trained), trained


def test_a_batch_shows_each_rows_answer_or_problem_first(live_api: str, csv_rows: list[dict]) -> None:
    rows = [dict(row) for row in csv_rows[:3]]
    rows[1]["district"] = "Atlantis"
    app = _open("views/batch.py")
    app.file_uploader[0].upload("rows.csv", pd.DataFrame(rows).to_csv(index=False).encode("utf-8"), "text/csv")
    app.run()
    assert "1 row has issues" in app.warning[0].value
    assert list(app.dataframe[0].value.columns)[0] == "issues"
    next(b for b in app.button if b.label == "Score 3 rows").click().run()
    for _ in range(100):  # AppTest does not fire `run_every`: each run is one poll of the fragment
        if any(w.value.startswith("Batch ") for w in app.warning):
            break
        time.sleep(0.1)
        app.run()
    assert "Batch partial: 2 results, 1 error." in [w.value for w in app.warning]
    results = app.dataframe[-1]
    assert results.proto.placeholder == "–"
    table = results.value
    assert list(table.columns[:6]) == ["row", "risk_level", "p_severe", "relative_risk", "eclo", "problem"]
    assert table["row"].tolist() == [1, 2, 3]
    assert table["eclo"].isna().tolist() == [False, True, False] and "Atlantis" in table.loc[1, "problem"]


def test_the_risk_map_labels_each_district_beside_its_circle(live_api: str) -> None:
    app = _open("views/risk_map.py")
    (component,) = [e for e in app.get("component_instance") if "st_folium" in e.proto.component_name]
    script = json.loads(component.proto.json_args)["script"]
    for name in ("Jung-gu", "Suseong-gu", "Dalseong-gun"):
        # each label an icon of its own, shifted off its circle (folium writes the HTML with < and > escaped)
        assert re.search(rf"transform:translate\(.*?\\u003e{name} \d+%\\u003c/div\\u003e", script), name
    assert [s.label for s in app.selectbox][:4] == [
        "기상상태 · weather", "노면상태 · road surface", "도로형태 · road type", "사고유형 · accident type",
    ]  # fmt: skip
