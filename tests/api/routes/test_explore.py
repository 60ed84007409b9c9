"""Explore through the in-process app: any table uploads as `kind: "table"` with a profile; queries, a column's
distribution, points and proximity answer from its columnar copy; bad requests are clear 4xx."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.fixtures.datasets import dacon_file, upload
from tests.fixtures.explore import side_table

pytestmark = pytest.mark.stack  # uploads are checked in a spawned process of their own


def _table(client: TestClient, frame: pd.DataFrame, name: str, encoding: str = "cp949") -> dict:
    response = upload(client, frame.to_csv(index=False).encode(encoding), filename=f"{name}.csv", name=name)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_side_table_is_a_table_with_its_coordinates_and_profile(app_client: TestClient) -> None:
    frame = side_table("cctv", 300, seed=1)
    dataset = _table(app_client, frame, "cameras")
    assert dataset["kind"] == "table" and dataset["model_name"] is None and dataset["layout"] is None
    assert dataset["encoding"] == "cp949" and dataset["rows"] == 300 and dataset["columns"] == list(frame.columns)
    listed = app_client.get("/api/datasets").json()["items"]
    assert [d["kind"] for d in listed if d["id"] == dataset["id"]] == ["table"]
    profile = app_client.get(f"/api/datasets/{dataset['id']}/profile").json()
    assert profile["rows"] == 300
    assert profile["coordinates"] == {"latitude": "위도", "longitude": "경도"}
    by_name = {c["name"]: c for c in profile["columns"]}
    assert math.isclose(by_name["위도"]["missing_share"], frame["위도"].isna().mean())
    assert by_name["제한속도"]["type"] == "number" and by_name["시군구명"]["type"] in ("category", "text")
    refused = app_client.post(f"/api/datasets/{dataset['id']}/predict")
    assert refused.status_code == 409 and "table" in refused.json()["error"]["message"]


def test_an_accident_file_keeps_its_checks_and_gets_a_profile(app_client: TestClient, tmp_path: Path) -> None:
    dataset = upload(app_client, dacon_file(tmp_path, 200)).json()
    assert dataset["kind"] == "eclo" and dataset["model_name"] == "eclo" and dataset["layout"] == "dacon"
    profile = app_client.get(f"/api/datasets/{dataset['id']}/profile").json()
    assert profile["rows"] == 200 and profile["coordinates"] is None
    forced = upload(app_client, dacon_file(tmp_path, 50, seed=4), kind="table").json()
    assert forced["kind"] == "table" and forced["rows"] == 50


def test_queries_equal_pandas_and_bad_ones_are_422(app_client: TestClient) -> None:
    frame = side_table("parking", 500, seed=2)
    dataset_id = _table(app_client, frame, "parking")["id"]
    query = {"filters": [{"column": "주차구획수", "op": "ge", "value": 100}], "group_by": ["주차장구분"],
             "aggregates": [{"op": "count"}, {"op": "mean", "column": "주차구획수"}],
             "order_by": [{"column": "주차장구분"}]}  # fmt: skip
    answer = app_client.post(f"/api/datasets/{dataset_id}/query", json=query)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = frame[frame["주차구획수"] >= 100].groupby("주차장구분")["주차구획수"].agg(["count", "mean"])
    assert [r["주차장구분"] for r in body["rows"]] == list(expected.index) and body["truncated"] is False
    for row in body["rows"]:
        count, mean = expected.loc[row["주차장구분"]]
        assert row["count"] == count and math.isclose(row["mean_주차구획수"], mean)
    unknown = app_client.post(f"/api/datasets/{dataset_id}/query", json={"filters": [{"column": "nope", "op": "eq",
                                                                                      "value": 1}]})  # fmt: skip
    assert unknown.status_code == 422 and unknown.json()["error"]["details"][0]["field"] == "filters[0].column"
    too_many = app_client.post(f"/api/datasets/{dataset_id}/query", json={"limit": 10**9})
    assert too_many.status_code == 422
    column = app_client.get(f"/api/datasets/{dataset_id}/columns/주차구획수", params={"bins": 10})
    assert column.status_code == 200, column.text
    assert app_client.get(f"/api/datasets/{dataset_id}/columns/nope").status_code == 422
    assert app_client.get(f"/api/datasets/{'0' * 32}/profile").status_code == 404


def test_points_are_capped_and_near_counts_equal_a_brute_force_check(app_client: TestClient) -> None:
    cameras, zones = side_table("cctv", 150, seed=3), side_table("child_zone", 120, seed=4)
    camera_id = _table(app_client, cameras, "cameras")["id"]
    zone_id = _table(app_client, zones, "zones", encoding="utf-8-sig")["id"]
    located = cameras.dropna(subset=["위도", "경도"])
    points = app_client.get(f"/api/datasets/{camera_id}/points", params={"cap": 50, "columns": ["제한속도"]}).json()
    assert len(points["points"]) == 50 and points["total"] == len(located) and points["left_out"] == len(located) - 50
    assert {"lat", "lon", "제한속도"} <= set(points["points"][0])
    radius = 3000.0
    near = app_client.get(f"/api/datasets/{zone_id}/near", params={"other": camera_id, "radius_m": radius,
                                                                    "limit": 1000}).json()  # fmt: skip
    counts = {row["row"]: row["count"] for row in near["rows"]}
    lat1, lon1 = np.radians(located["위도"].to_numpy()), np.radians(located["경도"].to_numpy())
    for index, zone in zones.dropna(subset=["위도", "경도"]).iterrows():
        lat0, lon0 = math.radians(zone["위도"]), math.radians(zone["경도"])
        h = np.sin((lat1 - lat0) / 2) ** 2 + math.cos(lat0) * np.cos(lat1) * np.sin((lon1 - lon0) / 2) ** 2
        assert counts.get(index, 0) == int((2 * 6_371_008.8 * np.arcsin(np.sqrt(h)) <= radius).sum())
    too_far = app_client.get(f"/api/datasets/{zone_id}/near", params={"other": camera_id, "radius_m": 10**9})
    assert too_far.status_code == 422 and too_far.json()["error"]["details"] == [{"field": "radius_m"}]


def test_an_accident_file_joins_a_side_table_by_dong(app_client: TestClient, tmp_path: Path) -> None:
    accidents = upload(app_client, dacon_file(tmp_path, 400, seed=5)).json()
    cameras = side_table("cctv", 200, seed=6)
    camera_id = _table(app_client, cameras, "cameras")["id"]
    joined = app_client.get(f"/api/datasets/{accidents['id']}/near", params={"other": camera_id})
    assert joined.status_code == 200, joined.text
    rows = joined.json()["rows"]
    assert sum(r["count"] for r in rows) > 0
    per_dong = cameras["소재지지번주소"].str.split(" ").map(lambda parts: (parts[1], parts[2])).value_counts()
    some = next(r for r in rows if any(v for k, v in r.items() if k.startswith("cameras")))
    key = next(k for k in some if k.startswith("cameras"))
    place = (some["gu"], some["dong"])
    assert some[key] == per_dong.get(place, 0)
