"""The data tools through the SDK's in-memory client: each answers what the explore routes answer for the same
question on the same uploaded table, bounded to MCP_MAX_ROWS rows with the count left out; a bad argument is a tool
error naming its field."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from mcp.types import CallToolResult

from backend.core.config import Settings
from backend.mcp.server import tool_names
from tests.fixtures.datasets import upload
from tests.fixtures.explore import side_table

pytestmark = pytest.mark.stack  # uploads are checked in a spawned process of their own (the app runs in-process)

MAX_ROWS = 5
EXPLORE_MAX_ROWS = 200  # below the cameras' rows: the correlation is a sample
DATA_TOOLS = {
    "list_datasets",
    "dataset_profile",
    "column_statistics",
    "value_counts",
    "filter_rows",
    "sample_rows",
    "group_aggregate",
    "cross_table",
    "time_pattern",
    "percentile",
    "outliers",
    "correlation_with_target",
    "geo_bounds",
    "near",
}


@pytest.fixture
def app_settings(app_settings: Settings) -> Settings:
    return app_settings.model_copy(update={"mcp_max_rows": MAX_ROWS, "explore_max_rows": EXPLORE_MAX_ROWS})


def cameras_frame(rows: int = 300, seed: int = 1) -> pd.DataFrame:
    """Speed cameras with a time of enforcement (for time patterns) and a long-tailed count (for outliers)."""
    frame = side_table("cctv", rows, seed=seed)
    rng = np.random.default_rng(seed + 100)
    start = pd.Timestamp("2021-01-01").value // 10**9
    seconds = rng.integers(0, 365 * 24 * 3600, rows) + start
    frame["단속일시"] = pd.to_datetime(seconds, unit="s").strftime("%Y-%m-%d %H:%M:%S")
    frame["단속건수"] = np.round(rng.lognormal(3.0, 1.0, rows), 2)
    return frame


def uploaded(client: TestClient, frame: pd.DataFrame, name: str) -> str:
    response = upload(client, frame.to_csv(index=False).encode("cp949"), filename=f"{name}.csv", name=name)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def cameras(app_client: TestClient) -> tuple[str, pd.DataFrame]:
    frame = cameras_frame()
    return uploaded(app_client, frame, "cameras"), frame


def call(client: TestClient, name: str, arguments: dict[str, Any]) -> CallToolResult:
    """One tool call through the SDK's client, connected in-process to the app's MCP server."""

    async def run() -> CallToolResult:
        async with Client(client.app.state.mcp) as mcp:  # type: ignore[attr-defined]
            return await mcp.call_tool(name, arguments)

    return asyncio.run(run())


def answer(client: TestClient, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = call(client, name, arguments)
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


def error(client: TestClient, name: str, arguments: dict[str, Any]) -> str:
    result = call(client, name, arguments)
    assert result.is_error, result
    return " ".join(getattr(block, "text", "") for block in result.content)


def rest_query(client: TestClient, dataset_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/api/datasets/{dataset_id}/query", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def rest_count(client: TestClient, dataset_id: str, filters: list[dict[str, Any]]) -> int:
    return rest_query(client, dataset_id, {"filters": filters, "aggregates": [{"op": "count"}]})["rows"][0]["count"]


def test_every_data_tool_is_served_with_an_example(app_client: TestClient) -> None:
    served = set(tool_names(app_client.app.state.mcp))  # type: ignore[attr-defined]
    assert DATA_TOOLS <= served

    async def listed() -> dict[str, Any]:
        async with Client(app_client.app.state.mcp) as mcp:  # type: ignore[attr-defined]
            return {t.name: t for t in (await mcp.list_tools()).tools}

    tools = asyncio.run(listed())
    for name in DATA_TOOLS - {"list_datasets", "dataset_profile"}:
        assert "Example" in (tools[name].description or ""), name
        assert "dataset_id" in tools[name].input_schema["properties"], name


def test_listing_profile_and_column_answer_as_the_routes(app_client: TestClient, cameras: tuple) -> None:
    dataset_id, frame = cameras
    listed = answer(app_client, "list_datasets", {})
    assert listed["items"] == app_client.get("/api/datasets", params={"size": MAX_ROWS}).json()["items"]

    profile = app_client.get(f"/api/datasets/{dataset_id}/profile").json()
    profiled = answer(app_client, "dataset_profile", {"dataset_id": dataset_id})
    assert profiled["columns"] == profile["columns"][:MAX_ROWS]
    assert profiled["left_out"] == len(frame.columns) - MAX_ROWS and profiled["rows"] == len(frame)

    by_name = {c["name"]: c for c in profile["columns"]}
    numbers = answer(app_client, "column_statistics", {"dataset_id": dataset_id, "column": "단속건수", "bins": 20})
    route = app_client.get(f"/api/datasets/{dataset_id}/columns/단속건수", params={"bins": MAX_ROWS}).json()
    assert numbers["summary"] == by_name["단속건수"] and numbers["rows"] == len(frame)
    assert numbers["bins"] == route["bins"] and numbers["left_out"] == 0
    assert sum(b["count"] for b in numbers["bins"]) == frame["단속건수"].notna().sum()

    places = answer(app_client, "column_statistics", {"dataset_id": dataset_id, "column": "시군구명"})
    route = app_client.get(f"/api/datasets/{dataset_id}/columns/시군구명").json()
    assert places["values"] == route["values"][:MAX_ROWS] and places["left_out"] == len(route["values"]) - MAX_ROWS
    assert places["other"] == len(frame) - sum(v["count"] for v in places["values"])


def test_counts_rows_and_groups_answer_as_the_query_route(app_client: TestClient, cameras: tuple) -> None:
    dataset_id, frame = cameras
    counts = answer(app_client, "value_counts", {"dataset_id": dataset_id, "column": "제한속도", "top": 10})
    grouped = rest_query(
        app_client,
        dataset_id,
        {"group_by": ["제한속도"], "aggregates": [{"op": "count"}], "order_by": [{"column": "count", "desc": True}]},
    )
    assert counts["values"] == [{"value": r["제한속도"], "count": r["count"]} for r in grouped["rows"][:MAX_ROWS]]
    expected = frame["제한속도"].value_counts(dropna=False)
    assert counts["left_out"] == len(expected) - len(counts["values"]) == len(grouped["rows"]) - len(counts["values"])
    assert counts["missing"] == frame["제한속도"].isna().sum() and counts["rows"] == len(frame)
    assert counts["other"] == len(frame) - sum(v["count"] for v in counts["values"])

    filters = [{"column": "제한속도", "op": "ge", "value": 50}, {"column": "시군구명", "op": "ne", "value": "중구"}]
    order = [{"column": "단속건수", "desc": True}]
    rows = answer(
        app_client,
        "filter_rows",
        {
            "dataset_id": dataset_id,
            "filters": filters,
            "order_by": order,
            "columns": ["무인교통단속카메라관리번호", "단속건수"],
            "limit": 50,
        },
    )
    route = rest_query(app_client, dataset_id, {"filters": filters, "order_by": order, "limit": MAX_ROWS})
    assert rows["rows"] == [{k: r[k] for k in ("무인교통단속카메라관리번호", "단속건수")} for r in route["rows"]]
    matching = ((frame["제한속도"] >= 50) & (frame["시군구명"] != "중구")).sum()
    assert rows["matching"] == matching == rest_count(app_client, dataset_id, filters)
    assert rows["left_out"] == matching - MAX_ROWS

    sample = answer(app_client, "sample_rows", {"dataset_id": dataset_id, "n": 3})
    assert sample["rows"] == rest_query(app_client, dataset_id, {"limit": 3})["rows"]
    assert sample["matching"] == len(frame) and sample["left_out"] == len(frame) - 3

    per_gu = {
        "group_by": ["시군구명"],
        "aggregates": [{"op": "count"}, {"op": "mean", "column": "제한속도"}],
        "order_by": [{"column": "count", "desc": True}],
    }
    tool = answer(app_client, "group_aggregate", {"dataset_id": dataset_id, **per_gu})
    route = rest_query(app_client, dataset_id, per_gu)
    assert tool["columns"] == route["columns"] and tool["rows"] == route["rows"][:MAX_ROWS]
    assert tool["left_out"] == frame["시군구명"].nunique() - MAX_ROWS and tool["truncated"] is False
    top_gu = frame["시군구명"].value_counts()
    assert tool["rows"][0]["count"] == top_gu.iloc[0]

    crossed = answer(app_client, "cross_table", {"dataset_id": dataset_id, "row": "시군구명", "column": "제한속도"})
    route = rest_query(app_client, dataset_id, {"crosstab": {"row": "시군구명", "column": "제한속도"}})
    assert crossed["columns"] == route["columns"] and crossed["rows"] == route["rows"][:MAX_ROWS]
    assert crossed["left_out"] == len(route["rows"]) - MAX_ROWS


def test_time_percentiles_outliers_and_correlation_answer_as_the_engine(app_client: TestClient, cameras: tuple) -> None:
    dataset_id, frame = cameras
    hours = answer(
        app_client,
        "time_pattern",
        {
            "dataset_id": dataset_id,
            "column": "단속일시",
            "by": "hour",
            "aggregates": [{"op": "mean", "column": "단속건수"}],
        },
    )
    route = rest_query(
        app_client,
        dataset_id,
        {"time": {"column": "단속일시", "by": "hour"}, "aggregates": [{"op": "mean", "column": "단속건수"}]},
    )
    assert hours["columns"] == ["hour", "mean_단속건수"] and hours["rows"] == route["rows"][:MAX_ROWS]
    assert hours["left_out"] == pd.to_datetime(frame["단속일시"]).dt.hour.nunique() - MAX_ROWS
    weekdays = answer(
        app_client,
        "cross_table",
        {
            "dataset_id": dataset_id,
            "row": "weekday",
            "column": "제한속도",
            "time": {"column": "단속일시", "by": "weekday"},
            "descending": True,
        },
    )
    route = rest_query(
        app_client,
        dataset_id,
        {
            "time": {"column": "단속일시", "by": "weekday"},
            "crosstab": {"row": "weekday", "column": "제한속도"},
            "order_by": [{"column": "weekday", "desc": True}],
        },
    )
    assert weekdays["rows"] == route["rows"][:MAX_ROWS] and weekdays["rows"][0]["weekday"] == 6

    spread = answer(
        app_client, "percentile", {"dataset_id": dataset_id, "column": "단속건수", "percentiles": [10, 50, 90, 99.5]}
    )
    route = rest_query(
        app_client,
        dataset_id,
        {"aggregates": [{"op": "percentile", "column": "단속건수", "q": q} for q in (0.1, 0.5, 0.9, 0.995)]},
    )["rows"][0]
    assert [p["value"] for p in spread["percentiles"]] == list(route.values())
    for p in spread["percentiles"]:
        assert math.isclose(p["value"], frame["단속건수"].quantile(p["percentile"] / 100), rel_tol=1e-9)

    profile = {c["name"]: c for c in app_client.get(f"/api/datasets/{dataset_id}/profile").json()["columns"]}
    q1, q3 = profile["단속건수"]["q1"], profile["단속건수"]["q3"]
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    found = answer(
        app_client,
        "outliers",
        {"dataset_id": dataset_id, "column": "단속건수", "columns": ["무인교통단속카메라관리번호", "단속건수"]},
    )
    assert (found["low_fence"], found["high_fence"]) == (low, high)
    below = [{"column": "단속건수", "op": "lt", "value": low}]
    above = [{"column": "단속건수", "op": "gt", "value": high}]
    assert found["below"] == rest_count(app_client, dataset_id, below) == (frame["단속건수"] < low).sum()
    assert found["above"] == rest_count(app_client, dataset_id, above) == (frame["단속건수"] > high).sum()
    assert found["above"] > MAX_ROWS and found["left_out"] == found["below"] + found["above"] - MAX_ROWS
    furthest = rest_query(
        app_client,
        dataset_id,
        {"filters": above, "order_by": [{"column": "단속건수", "desc": True}], "limit": MAX_ROWS},
    )["rows"]
    assert found["below"] == 0 and [r["단속건수"] for r in found["rows"]] == [r["단속건수"] for r in furthest]
    assert set(found["rows"][0]) == {"무인교통단속카메라관리번호", "단속건수"}

    wanted = ["설치연도", "단속건수", "위도", "경도"]
    correlated = answer(
        app_client, "correlation_with_target", {"dataset_id": dataset_id, "target": "제한속도", "columns": wanted}
    )
    pulled = rest_query(
        app_client, dataset_id, {"filters": [{"column": "제한속도", "op": "not_null"}], "limit": EXPLORE_MAX_ROWS}
    )
    rows = pd.DataFrame(pulled["rows"]).astype(dict.fromkeys(["제한속도", *wanted], float))
    assert correlated["rows_used"] == EXPLORE_MAX_ROWS == len(rows)
    assert correlated["rows_with_target"] == frame["제한속도"].notna().sum() and correlated["sample"] is True
    assert len(correlated["correlations"]) == 4 and correlated["left_out"] == 0
    for found_r in correlated["correlations"]:
        both = rows[[found_r["column"], "제한속도"]].dropna()
        assert found_r["n"] == len(both)
        assert math.isclose(found_r["r"], both[found_r["column"]].corr(both["제한속도"]), abs_tol=1e-12)
    strengths = [abs(c["r"]) for c in correlated["correlations"]]
    assert strengths == sorted(strengths, reverse=True)
    every = answer(app_client, "correlation_with_target", {"dataset_id": dataset_id, "target": "단속건수"})
    numeric = [c for c, p in profile.items() if p["type"] in ("number", "coordinate") and c != "단속건수"]
    assert sorted(c["column"] for c in every["correlations"]) == sorted(numeric) and every["left_out"] == 0


def test_geo_bounds_and_near_answer_as_points_and_near(app_client: TestClient, cameras: tuple) -> None:
    camera_id, frame = cameras
    points = app_client.get(f"/api/datasets/{camera_id}/points").json()
    box = answer(app_client, "geo_bounds", {"dataset_id": camera_id})
    assert box["with_coordinates"] == points["total"] == frame[["위도", "경도"]].dropna().shape[0]
    assert box["min_latitude"] == min(p["lat"] for p in points["points"])
    assert box["max_latitude"] == max(p["lat"] for p in points["points"])
    assert box["min_longitude"] == min(p["lon"] for p in points["points"])
    assert box["max_longitude"] == max(p["lon"] for p in points["points"])
    assert (box["latitude_column"], box["longitude_column"], box["rows"]) == ("위도", "경도", len(frame))
    in_gu = [{"column": "시군구명", "op": "eq", "value": "중구"}]
    assert (
        answer(app_client, "geo_bounds", {"dataset_id": camera_id, "filters": in_gu})["with_coordinates"]
        == (frame[frame["시군구명"] == "중구"][["위도", "경도"]].dropna().shape[0])
    )

    zones = side_table("child_zone", 80, seed=4)
    zone_id = uploaded(app_client, zones, "zones")
    params = {"other": camera_id, "radius_m": 3000.0, "columns": ["대상시설명"]}
    route = app_client.get(f"/api/datasets/{zone_id}/near", params={**params, "limit": 1000}).json()
    tool = answer(
        app_client,
        "near",
        {"dataset_id": zone_id, "other_id": camera_id, "radius_m": 3000.0, "limit": 100, "columns": ["대상시설명"]},
    )
    assert tool["rows"] == route["rows"][:MAX_ROWS]
    assert tool["left_out"] == route["summary"]["rows_with_coordinates"] - MAX_ROWS == len(route["rows"]) - MAX_ROWS
    same = app_client.get(f"/api/datasets/{zone_id}/near", params={**params, "limit": MAX_ROWS}).json()
    assert tool["summary"] == same["summary"]


def test_bad_arguments_are_tool_errors_naming_the_field(app_client: TestClient, cameras: tuple) -> None:
    dataset_id, _ = cameras
    message = error(
        app_client, "filter_rows", {"dataset_id": dataset_id, "filters": [{"column": "nope", "op": "eq", "value": 1}]}
    )
    assert "422" in message and "filters[0].column" in message and "nope" in message
    message = error(
        app_client,
        "group_aggregate",
        {"dataset_id": dataset_id, "group_by": ["시군구명"], "aggregates": [{"op": "mean", "column": "nope"}]},
    )
    assert "422" in message and "aggregates[0].column" in message
    message = error(
        app_client,
        "group_aggregate",
        {"dataset_id": dataset_id, "group_by": ["시군구명"], "aggregates": [{"op": "mean", "column": "시군구명"}]},
    )
    assert "aggregates[0].column" in message and "numbers" in message
    assert "fields: column" in error(app_client, "column_statistics", {"dataset_id": dataset_id, "column": "nope"})
    assert "fields: column" in error(app_client, "outliers", {"dataset_id": dataset_id, "column": "시군구명"})
    assert "fields: columns[1]" in error(
        app_client, "sample_rows", {"dataset_id": dataset_id, "columns": ["위도", "nope"]}
    )
    assert "fields: target" in error(
        app_client, "correlation_with_target", {"dataset_id": dataset_id, "target": "시군구명"}
    )
    assert "group_by[0]" in error(
        app_client, "time_pattern", {"dataset_id": dataset_id, "column": "단속일시", "by": "hour", "group_by": ["nope"]}
    )
    assert "time.column" in error(
        app_client, "time_pattern", {"dataset_id": dataset_id, "column": "시군구명", "by": "month"}
    )
    assert "percentiles" in error(
        app_client, "percentile", {"dataset_id": dataset_id, "column": "단속건수", "percentiles": [150]}
    )
    assert "op" in error(
        app_client, "filter_rows", {"dataset_id": dataset_id, "filters": [{"column": "위도", "op": "like", "value": 1}]}
    )
    assert "404" in error(app_client, "geo_bounds", {"dataset_id": "0" * 32})
    assert "fields: radius_m" in error(
        app_client, "near", {"dataset_id": dataset_id, "other_id": dataset_id, "radius_m": 10**9}
    )
