"""The Explore page with streamlit's AppTest against the real API of the session stack: generated side tables (speed
cameras with a mostly missing column, child protection zones) and a generated accident file, uploaded through the
API; the page's metrics, column table, charts, maps, proximity summary and per-동 join checked against the API's own
answers."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from frontend.client import ApiClient
from tests.fixtures.dashboard import APP, open_with_dataset
from tests.fixtures.datasets import dacon_file, upload
from tests.fixtures.explore import side_table

pytestmark = pytest.mark.stack

CAMERAS = 300


@pytest.fixture(scope="module")
def uploaded(api: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Speed cameras (a note column 80% missing), child protection zones, and 600 accidents."""
    cameras = side_table("cctv", CAMERAS, seed=11)
    cameras["비고"] = np.where(np.arange(CAMERAS) % 5 == 0, "점검", None)
    zones = side_table("child_zone", 200, seed=12)
    found = {}
    for key, frame in (("cameras", cameras), ("zones", zones)):
        answer = upload(api, frame.to_csv(index=False).encode("cp949"), filename=f"{key}.csv", name=f"explore {key}")
        assert answer.status_code == 201, answer.text
        found[key] = {**answer.json(), "frame": frame}
    raw = dacon_file(Path(tmp_path_factory.mktemp("explore")), 600, seed=13)
    answer = upload(api, raw, filename="accidents.csv", name="explore accidents")
    assert answer.status_code == 201 and answer.json()["kind"] == "eclo", answer.text
    found["accidents"] = answer.json()
    return found


def _open(dataset_id: str) -> AppTest:
    return open_with_dataset("views/explore.py", dataset_id)


def _maps(app: AppTest) -> list[dict[str, Any]]:
    found = [e for e in app.get("component_instance") if "st_folium" in e.proto.component_name]
    return [json.loads(e.proto.json_args) for e in found]


def _charts(app: AppTest) -> list[dict[str, Any]]:
    return [json.loads(e.proto.spec) for e in app.get("plotly_chart")]


def _values(trace: dict[str, Any], key: str) -> list[Any]:
    """A trace's array, also when Plotly sent it as a typed array ({"dtype", "bdata"}: base64 of the numbers)."""
    found = trace[key]
    if isinstance(found, dict) and "bdata" in found:
        return np.frombuffer(base64.b64decode(found["bdata"]), dtype=np.dtype(found["dtype"])).tolist()
    return list(found)


def _chart_kind(app: AppTest, kind: str) -> AppTest:
    (chooser,) = [b for b in app.button_group if b.label == "Chart"]
    chooser.set_value(kind).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def _table(app: AppTest, *columns: str) -> Any:
    (frame,) = [d.value for d in app.dataframe if set(columns) <= set(d.value.columns)]
    return frame


def _pick(app: AppTest, label: str, value: Any) -> AppTest:
    (box,) = [s for s in app.selectbox if s.label == label]
    box.set_value(value).run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def test_a_side_table_shows_its_metrics_columns_chart_and_map(
    live_api: str, api: httpx.Client, uploaded: dict[str, dict[str, Any]]
) -> None:
    cameras = uploaded["cameras"]
    profile = api.get(f"/api/datasets/{cameras['id']}/profile").json()
    app = _open(cameras["id"])
    metrics = {m.label: m.value for m in app.metric}
    average = sum(c["missing_share"] for c in profile["columns"]) / len(profile["columns"])
    assert metrics["Rows"] == f"{CAMERAS:,}" and metrics["Columns"] == "9"
    assert metrics["Average missing share"] == f"{average:.1%}" and metrics["Coordinates"] == "위도 / 경도"
    assert any("비고 (80%)" in w.value and "mostly missing" in w.value for w in app.warning)

    columns = _table(app, "column", "type", "missing", "distinct", "median")
    assert list(columns["column"]) == list(cameras["frame"].columns)  # Korean names as they are
    by_name = columns.set_index("column")
    assert by_name.loc["위도", "type"] == "coordinate" and by_name.loc["제한속도", "type"] == "number"
    assert "None" not in columns.to_string()
    preview = _table(app, "무인교통단속카메라관리번호", "소재지지번주소")
    assert len(preview) == 20 and list(preview.columns) == list(cameras["frame"].columns)

    bars = _charts(app)[0]["data"][0]  # the first number column with the most distinct values: 설치연도
    assert bars["type"] == "bar" and sum(_values(bars, "y")) == CAMERAS

    located = int(cameras["frame"]["위도"].notna().sum())
    clustered = _maps(app)[0]
    assert clustered["script"].count('"#1e88e5"') == located and "L.markerClusterGroup" in clustered["script"]
    links = clustered["js_links"] + clustered["css_links"]
    assert any(link.endswith("leaflet.markercluster.js") for link in links)
    assert not [link for link in links if "//" in link]  # every script and style from the dashboard itself
    shown = f"{located:,} of {located:,} points shown · {CAMERAS - located:,} rows have no valid coordinates."
    assert shown in [c.value for c in app.caption]


def test_the_charts_follow_the_column_and_the_chart_chosen(live_api: str, uploaded: dict[str, dict[str, Any]]) -> None:
    app = _chart_kind(_open(uploaded["cameras"]["id"]), "box")
    assert _charts(app)[0]["data"][0]["type"] == "box"
    curve = _charts(_chart_kind(app, "density"))[0]["data"][0]
    assert curve["type"] == "scatter" and curve["fill"] == "tozeroy"
    values = _charts(_pick(app, "Column", "시군구명"))[0]["data"][0]
    assert values["type"] == "bar" and values["orientation"] == "h" and sum(_values(values, "x")) == CAMERAS
    zones = _chart_kind(_pick(_open(uploaded["zones"]["id"]), "Column", "데이터기준일자"), "by month")
    assert "rows by month" in _charts(zones)[0]["layout"]["title"]["text"]


def test_the_near_summary_and_its_map_match_the_api(
    live_api: str, api: httpx.Client, uploaded: dict[str, dict[str, Any]]
) -> None:
    cameras, zones = uploaded["cameras"], uploaded["zones"]
    app = _pick(_open(cameras["id"]), "Other dataset", zones["id"])
    summary = api.get(f"/api/datasets/{cameras['id']}/near", params={"other": zones["id"], "radius_m": 500}).json()[
        "summary"
    ]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Points"] == f"{summary['rows_with_coordinates']:,}"
    assert metrics["Mean within 500 m"] == f"{summary['mean_count']:.2f}"
    assert metrics["Most"] == f"{summary['max_count']:,}"
    assert metrics["With none"] == f"{summary['share_with_none']:.0%}"
    overlay = _maps(app)[1]
    assert overlay["script"].count("within 500 m") == summary["rows_with_coordinates"]
    assert overlay["script"].count('"#1e88e5"') == int(zones["frame"]["위도"].notna().sum())
    counts = _table(app, "row", "count", "nearest_m")
    assert counts["count"].is_monotonic_decreasing and counts["count"].iloc[0] == summary["max_count"]


def test_an_accident_file_sets_each_dong_beside_a_side_table(
    live_api: str, api: httpx.Client, uploaded: dict[str, dict[str, Any]]
) -> None:
    accidents, cameras = uploaded["accidents"], uploaded["cameras"]
    app = _pick(_open(accidents["id"]), "Side table", cameras["id"])
    expected = api.get(f"/api/datasets/{accidents['id']}/near", params={"other": cameras["id"]}).json()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Rows"] == "600" and metrics["Coordinates"] == "none"
    assert metrics["동s"] == f"{expected['summary']['dongs']:,}"
    assert metrics["Accidents placed"] == f"{expected['summary']['accidents_with_dong']:,}"
    joined = _table(app, "gu", "dong", "count", "severe_share", "mean_eclo")
    assert len(joined) == expected["summary"]["returned"] and "explore cameras" in joined.columns
    assert list(joined["count"]) == [r["count"] for r in expected["rows"]]
    assert any("동s with the most accidents" in c["layout"]["title"]["text"] for c in _charts(app))
    (dong_map,) = _maps(app)
    assert "circleMarker" in dong_map["script"] and not [x for x in dong_map["js_links"] if "//" in x]


def test_no_dataset_yet_points_at_the_datasets_page(live_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ApiClient, "datasets", lambda self, page=1, size=50: {"items": [], "total": 0, "page": 1,
                                                                             "size": size, "pages": 0})  # fmt: skip
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page("views/explore.py").run()
    assert not app.exception, [e.message for e in app.exception]
    assert "No datasets yet: upload one on the Datasets page" in app.info[0].value
