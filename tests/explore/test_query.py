import json
import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backend.explore.engine import open_table
from backend.explore.errors import QueryError
from backend.explore.query import column_detail, points, run_query
from backend.schemas.explore import Aggregate, CrossTab, Filter, OrderBy, TableQuery, TimePattern
from tests.explore.generated import as_parquet, side_frame

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The side layout through the upload path (CP949 CSV -> Parquet), and pandas' frame of the same file."""
    folder = tmp_path_factory.mktemp("explore")
    path = as_parquet(side_frame(3000, seed=7), folder)
    frame = pd.read_parquet(path)
    for name in ("설치일자", "사고일시"):
        frame[name] = pd.to_datetime(frame[name])
    return path, frame


def same(got: Any, expected: Any) -> bool:
    """Query answers against pandas: None for NaN, close floats."""
    if expected is None or (isinstance(expected, float) and math.isnan(expected)) or expected is pd.NaT:
        return got is None
    if isinstance(expected, float | np.floating):
        return got is not None and math.isclose(got, float(expected), rel_tol=1e-9, abs_tol=1e-9)
    return got == expected


def count_of(path: Path, *filters: Filter) -> int:
    result = run_query(path, TableQuery(filters=list(filters), aggregates=[Aggregate(op="count")]))
    return result.rows[0]["count"]


FILTER_CASES = [
    ("제한속도", "eq", 50, lambda s: s == 50),
    ("제한속도", "ne", 50, lambda s: s != 50),  # keeps missing, as pandas does
    ("점수", "lt", 40.5, lambda s: s < 40.5),
    ("점수", "le", 40.5, lambda s: s <= 40.5),
    ("점수", "gt", "60", lambda s: s > 60),  # a number given as text
    ("점수", "ge", 60, lambda s: s >= 60),
    ("시군구명", "in", ["남구", "중구"], lambda s: s.isin(["남구", "중구"])),
    ("시군구명", "not_in", ["남구", "중구"], lambda s: ~s.isin(["남구", "중구"])),
    ("단속구분", "not_in", ["과속"], lambda s: ~s.isin(["과속"])),
    ("단속구분", "ne", "과속", lambda s: s != "과속"),
    ("소재지지번주소", "contains", "대명동", lambda s: s.str.contains("대명동", regex=False, na=False)),
    ("단속구분", "contains", ";", lambda s: s.str.contains(";", regex=False, na=False)),
    ("단속구분", "is_null", None, lambda s: s.isna()),
    ("점수", "not_null", None, lambda s: s.notna()),
    ("점수", "between", [40, 60], lambda s: s.between(40, 60)),
    ("설치일자", "ge", "2017-06-01", lambda s: s >= pd.Timestamp("2017-06-01")),
    ("사고일시", "between", ["2013-01-01", "2014-06-30 12:00"], lambda s: s.between("2013-01-01", "2014-06-30 12:00")),
    ("사고일시", "is_null", None, lambda s: s.isna()),
    ("관리번호", "eq", "00042", lambda s: s == "00042"),
]


@pytest.mark.parametrize(("column", "op", "value", "mask"), FILTER_CASES, ids=[f"{c[1]}-{c[0]}" for c in FILTER_CASES])
def test_each_filter_matches_pandas(table: tuple[Path, pd.DataFrame], column: str, op: str, value: Any, mask) -> None:
    path, frame = table
    expected = frame[mask(frame[column]).fillna(False).astype(bool)]
    query = TableQuery(
        filters=[Filter(column=column, op=op, value=value)],
        aggregates=[Aggregate(op="count"), Aggregate(op="sum", column="설치연도")],
    )
    row = run_query(path, query).rows[0]
    assert row["count"] == len(expected) and 0 < len(expected) < len(frame)
    assert row["sum_설치연도"] == int(expected["설치연도"].sum())


def test_filters_combine_and_rows_come_back(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    query = TableQuery(
        filters=[
            Filter(column="시군구명", op="eq", value="남구"),
            Filter(column="점수", op="gt", value=50),
        ],
        order_by=[OrderBy(column="점수", desc=True)],
        limit=7,
    )
    result = run_query(path, query)
    expected = frame[(frame["시군구명"] == "남구") & (frame["점수"] > 50)].sort_values("점수", ascending=False)
    assert result.truncated and result.columns == list(frame.columns)
    assert [r["관리번호"] for r in result.rows] == expected["관리번호"].head(7).tolist()
    assert isinstance(result.rows[0]["설치일자"], str) and len(result.rows[0]["설치일자"]) == 10
    json.dumps(result.model_dump(), allow_nan=False)


AGGREGATES = [
    (Aggregate(op="count"), "count", lambda g: g.size()),
    (Aggregate(op="count", column="제한속도"), "count_제한속도", lambda g: g["제한속도"].count()),
    (Aggregate(op="sum", column="점수"), "sum_점수", lambda g: g["점수"].sum()),
    (Aggregate(op="mean", column="점수"), "mean_점수", lambda g: g["점수"].mean()),
    (Aggregate(op="median", column="제한속도"), "median_제한속도", lambda g: g["제한속도"].median()),
    (Aggregate(op="min", column="점수"), "min_점수", lambda g: g["점수"].min()),
    (Aggregate(op="max", column="설치연도"), "max_설치연도", lambda g: g["설치연도"].max()),
    (Aggregate(op="std", column="점수"), "std_점수", lambda g: g["점수"].std()),
    (Aggregate(op="percentile", column="점수", q=0.9), "p90_점수", lambda g: g["점수"].quantile(0.9)),
    (Aggregate(op="percentile", column="점수", q=0.025), "p2.5_점수", lambda g: g["점수"].quantile(0.025)),
    (Aggregate(op="distinct", column="제한속도"), "distinct_제한속도", lambda g: g["제한속도"].nunique()),
    (Aggregate(op="max", column="비고", name="last_note"), "last_note", lambda g: g["비고"].max()),
    (
        Aggregate(op="min", column="설치일자"),
        "min_설치일자",
        lambda g: g["설치일자"].min().map(lambda d: d.date().isoformat()),
    ),
]


@pytest.mark.parametrize(("aggregate", "key", "expected"), AGGREGATES, ids=[a[1] for a in AGGREGATES])
def test_group_by_each_aggregate_matches_pandas(
    table: tuple[Path, pd.DataFrame], aggregate: Aggregate, key: str, expected
) -> None:
    path, frame = table
    result = run_query(path, TableQuery(group_by=["시군구명", "제한속도"], aggregates=[aggregate], limit=1000))
    truth = expected(frame.groupby(["시군구명", "제한속도"], dropna=False))
    truth = {(gu, None if pd.isna(speed) else int(speed)): value for (gu, speed), value in truth.items()}
    assert result.columns == ["시군구명", "제한속도", key] and not result.truncated
    assert len(result.rows) == len(truth)
    for row in result.rows:
        value = truth[(row["시군구명"], row["제한속도"])]
        assert same(row[key], value.item() if hasattr(value, "item") else value), (row, value)
    # groups come ordered by their keys, missing last
    keys = [(r["시군구명"], r["제한속도"] is None, r["제한속도"] or 0) for r in result.rows]
    assert keys == sorted(keys)


def test_aggregates_without_groups_and_ordering_by_aggregate(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    result = run_query(path, TableQuery(aggregates=[a for a, _, _ in AGGREGATES[:10]]))
    assert len(result.rows) == 1 and not result.truncated
    whole = frame.groupby(lambda _: 0)
    for _, key, expected in AGGREGATES[:10]:
        assert same(result.rows[0][key], expected(whole).iloc[0]), key
    ordered = run_query(
        path,
        TableQuery(
            group_by=["시군구명"],
            aggregates=[Aggregate(op="mean", column="점수", name="score")],
            order_by=[OrderBy(column="score", desc=True)],
            limit=3,
        ),
    )
    truth = frame.groupby("시군구명")["점수"].mean().sort_values(ascending=False)
    assert [r["시군구명"] for r in ordered.rows] == truth.index[:3].tolist() and ordered.truncated


@pytest.mark.parametrize("by", ["year", "month", "weekday", "hour", "date"])
def test_time_patterns_match_pandas(table: tuple[Path, pd.DataFrame], by: str) -> None:
    path, frame = table
    when = frame["사고일시"].dt
    part = {"year": when.year, "month": when.month, "weekday": when.day_of_week, "hour": when.hour, "date": when.date}[
        by
    ]
    truth = frame.assign(part=part).groupby("part", dropna=False).agg(count=("점수", "size"), mean=("점수", "mean"))
    result = run_query(
        path,
        TableQuery(
            time=TimePattern(column="사고일시", by=by),
            aggregates=[Aggregate(op="count"), Aggregate(op="mean", column="점수")],
            limit=1000,
        ),
    )
    assert result.columns == [by, "count", "mean_점수"]
    assert result.truncated == (len(truth) > 1000) and len(result.rows) == min(len(truth), 1000)
    for row in result.rows:
        key = row[by]
        if key is None:
            expected = truth[truth.index.isna()].iloc[0]
        else:
            expected = truth.loc[pd.Timestamp(key).date() if by == "date" else key]
        assert row["count"] == expected["count"] and same(row["mean_점수"], expected["mean"])
    assert result.truncated or result.rows[-1][by] is None  # rows without a date: one group, last


def test_time_pattern_with_groups(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    result = run_query(path, TableQuery(time=TimePattern(column="설치일자", by="year"), group_by=["시군구명"]))
    truth = frame.groupby([frame["설치일자"].dt.year, "시군구명"]).size()
    assert result.columns == ["year", "시군구명", "count"]
    assert {(r["year"], r["시군구명"]): r["count"] for r in result.rows} == truth.to_dict()


def test_crosstab_counts_and_means_match_pandas(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    result = run_query(path, TableQuery(crosstab=CrossTab(row="시군구명", column="제한속도")))
    truth = pd.crosstab(frame["시군구명"], frame["제한속도"].astype("Int64"))
    assert result.columns == ["시군구명", *[str(c) for c in truth.columns]] and not result.truncated
    assert [r["시군구명"] for r in result.rows] == truth.index.tolist()
    for row in result.rows:
        assert all(row[str(c)] == truth.loc[row["시군구명"], c] for c in truth.columns)

    means = run_query(
        path,
        TableQuery(
            filters=[Filter(column="점수", op="gt", value=30)],
            crosstab=CrossTab(row="단속구분", column="시군구명", value=Aggregate(op="mean", column="점수")),
            order_by=[OrderBy(column="단속구분", desc=True)],
        ),
    )
    kept = frame[frame["점수"] > 30]
    truth = kept.pivot_table(index="단속구분", columns="시군구명", values="점수", aggfunc="mean")
    assert [r["단속구분"] for r in means.rows] == sorted(truth.index, reverse=True)
    for row in means.rows:
        for gu in truth.columns:
            assert same(row[gu], truth.loc[row["단속구분"], gu])


def test_crosstab_caps_columns_and_rows(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    result = run_query(
        path, TableQuery(crosstab=CrossTab(row="설치연도", column="관리번호"), limit=4), crosstab_columns=5
    )
    assert result.truncated and len(result.columns) == 6 and len(result.rows) <= 4
    heat = run_query(
        path,
        TableQuery(time=TimePattern(column="사고일시", by="hour"), crosstab=CrossTab(row="시군구명", column="hour")),
    )
    truth = pd.crosstab(frame["시군구명"], frame["사고일시"].dt.hour.astype("Int64"))
    assert heat.columns == ["시군구명", *[str(h) for h in truth.columns]]
    assert [[r[str(h)] for h in truth.columns] for r in heat.rows] == truth.to_numpy().tolist()


def test_limits_and_truncation(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    result = run_query(path, TableQuery(group_by=["관리번호"], limit=1000), max_rows=25)
    assert len(result.rows) == 25 and result.truncated
    result = run_query(path, {"group_by": ["시군구명"], "limit": 1000})
    assert len(result.rows) == frame["시군구명"].nunique() and not result.truncated


MALFORMED = [
    ({"filters": [{"column": "없는열", "op": "eq", "value": 1}]}, "filters[0].column"),
    ({"group_by": ["시군구명", "nope"]}, "group_by[1]"),
    ({"aggregates": [{"op": "count"}, {"op": "mean", "column": "nope"}]}, "aggregates[1].column"),
    ({"group_by": ["시군구명"], "order_by": [{"column": "점수"}]}, "order_by[0].column"),
    ({"time": {"column": "nope", "by": "year"}}, "time.column"),
    ({"crosstab": {"row": "nope", "column": "시군구명"}}, "crosstab.row"),
    ({"filters": [{"column": "점수", "op": "between", "value": [1]}]}, "filters[0].value"),
    ({"filters": [{"column": "점수", "op": "between", "value": [5, 1]}]}, "filters[0].value"),
    ({"filters": [{"column": "점수", "op": "in", "value": 3}]}, "filters[0].value"),
    ({"filters": [{"column": "점수", "op": "eq", "value": [1, 2]}]}, "filters[0].value"),
    ({"filters": [{"column": "점수", "op": "gt", "value": "high"}]}, "filters[0].value"),
    ({"filters": [{"column": "점수", "op": "eq", "value": True}]}, "filters[0].value"),
    ({"filters": [{"column": "점수", "op": "eq"}]}, "filters[0].value"),
    ({"filters": [{"column": "점수", "op": "contains", "value": "1"}]}, "filters[0].op"),
    ({"filters": [{"column": "점수", "op": "is_null", "value": 0}]}, "filters[0].value"),
    ({"filters": [{"column": "점수", "op": "in", "value": [1, "x"]}]}, "filters[0].value[1]"),
    ({"filters": [{"column": "설치일자", "op": "gt", "value": "yesterday"}]}, "filters[0].value"),
    ({"filters": [{"column": "설치일자", "op": "gt", "value": 2020}]}, "filters[0].value"),
    ({"filters": [{"column": "설치일자", "op": "gt", "value": "2020-01-01T00:00+09:00"}]}, "filters[0].value"),
    ({"aggregates": [{"op": "percentile", "column": "점수"}]}, "aggregates[0].q"),
    ({"aggregates": [{"op": "mean", "column": "점수", "q": 0.5}]}, "aggregates[0].q"),
    ({"aggregates": [{"op": "mean", "column": "시군구명"}]}, "aggregates[0].column"),
    ({"aggregates": [{"op": "sum", "column": "설치일자"}]}, "aggregates[0].column"),
    ({"aggregates": [{"op": "std"}]}, "aggregates[0].column"),
    ({"aggregates": [{"op": "count"}, {"op": "count", "column": "점수", "name": "count"}]}, "aggregates[1].name"),
    ({"group_by": ["시군구명"], "aggregates": [{"op": "count", "name": "시군구명"}]}, "aggregates[0].name"),
    ({"time": {"column": "시군구명", "by": "year"}}, "time.column"),
    ({"time": {"column": "설치일자", "by": "hour"}}, "time.by"),
    ({"crosstab": {"row": "시군구명", "column": "시군구명"}}, "crosstab.column"),
    ({"crosstab": {"row": "시군구명", "column": "제한속도"}, "group_by": ["비고"]}, "crosstab"),
    (
        {"crosstab": {"row": "시군구명", "column": "제한속도", "value": {"op": "mean", "column": "비고"}}},
        "crosstab.value.column",
    ),
    ({"limit": 5000}, "limit"),
    ({"limit": 0}, "limit"),
    ({"aggregates": [{"op": "percentile", "column": "점수", "q": 1.5}]}, "aggregates[0].q"),
    ({"filters": [{"column": "점수", "op": "like", "value": 1}]}, "filters[0].op"),
    ({"filters": [{"column": "점수", "op": "eq", "value": float("nan")}]}, "filters[0].value"),
    ({"filters": [{"column": "점수", "op": "in", "value": list(range(1001))}]}, "filters[0].value"),
    ({"filters": [{"column": "x", "op": "eq", "value": 1}] * 21}, "filters"),
    ({"sql": "SELECT 1"}, "sql"),
]


@pytest.mark.parametrize(("query", "field"), MALFORMED, ids=[f"{i}-{m[1]}" for i, m in enumerate(MALFORMED)])
def test_malformed_queries_name_the_field(table: tuple[Path, pd.DataFrame], query: dict, field: str) -> None:
    path, _ = table
    with pytest.raises(QueryError) as caught:
        run_query(path, query)
    assert caught.value.field == field, caught.value
    assert caught.value.message


def test_unknown_column_lists_the_allowed_ones(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    with pytest.raises(QueryError) as caught:
        run_query(path, TableQuery(group_by=["구"]))
    assert caught.value.allowed == list(frame.columns) and "시군구명" in caught.value.message


def test_slow_query_is_interrupted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 400_000
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": np.arange(n), "x": rng.normal(size=n)}), path)
    assert run_query(path, TableQuery(aggregates=[Aggregate(op="count")])).rows == [{"count": n}]  # opened
    query = TableQuery(
        group_by=["id"], aggregates=[Aggregate(op="median", column="x"), Aggregate(op="std", column="x")]
    )
    with pytest.raises(QueryError, match="took longer than 0.02 s") as caught:
        run_query(path, query, timeout_seconds=0.02)  # the query itself takes ~0.1 s on 2 cores
    assert caught.value.field == "query" and isinstance(caught.value.__cause__, duckdb.InterruptException)
    assert len(run_query(path, query, timeout_seconds=30).rows) == 100  # the table still answers


def test_no_file_access_from_a_query(table: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    path, _ = table
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    for value in (str(secret), f"' OR 1=1; SELECT * FROM read_csv('{secret}') --"):
        assert count_of(path, Filter(column="비고", op="eq", value=value)) == 0
        assert count_of(path, Filter(column="비고", op="contains", value=value)) == 0
    cursor, _, _ = open_table(path)  # the sandbox itself: only its own file
    with pytest.raises(duckdb.PermissionException):
        cursor.execute(f"SELECT * FROM read_csv('{secret}')")
    with pytest.raises(duckdb.InvalidInputException):
        cursor.execute("SET enable_external_access = true")
    cursor.close()


def test_odd_column_names_are_quoted(tmp_path: Path) -> None:
    names = ['a"b', "c'; DROP TABLE t; --", "select", "공백 있는 열"]
    pq.write_table(pa.table({n: [1, 2, 3] for n in names}), tmp_path / "odd.parquet")
    query = TableQuery(
        filters=[Filter(column=names[1], op="ge", value=2)],
        group_by=[names[0]],
        aggregates=[Aggregate(op="sum", column=names[2]), Aggregate(op="max", column=names[3])],
    )
    result = run_query(tmp_path / "odd.parquet", query)
    assert result.rows == [
        {'a"b': 2, "sum_select": 2, "max_공백 있는 열": 2},
        {'a"b': 3, "sum_select": 3, "max_공백 있는 열": 3},
    ]


def test_answers_are_json_safe(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"g": ["a", "b", "b"], "x": [1.0, 2.0, float("nan")], "when": pa.array([0, 1, 2], pa.timestamp("s"))}),
        tmp_path / "nan.parquet",
    )
    result = run_query(
        tmp_path / "nan.parquet",
        TableQuery(group_by=["g"], aggregates=[Aggregate(op="std", column="x"), Aggregate(op="max", column="when")]),
    )
    assert result.rows == [
        {"g": "a", "std_x": None, "max_when": "1970-01-01T00:00:00"},
        {"g": "b", "std_x": None, "max_when": "1970-01-01T00:00:02"},
    ]
    json.dumps(run_query(tmp_path / "nan.parquet", TableQuery()).model_dump(), allow_nan=False)


def test_column_detail_bins_and_values(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    detail = column_detail(path, "점수", bins=10)
    counts, edges = np.histogram(frame["점수"].dropna(), bins=10)
    assert detail.type == "number" and [b.count for b in detail.bins] == counts.tolist()
    assert [b.start for b in detail.bins] == pytest.approx(edges[:-1].tolist())
    assert detail.missing == frame["점수"].isna().sum() and detail.median == pytest.approx(frame["점수"].median())
    speed = column_detail(path, "설치연도")  # few integers: one bin per value
    assert {int(b.start): b.count for b in speed.bins} == frame["설치연도"].value_counts().sort_index().to_dict()
    gu = column_detail(path, "시군구명", top=3)
    truth = frame["시군구명"].value_counts()
    assert [(v.value, v.count) for v in gu.values] == list(truth.items())[:3]
    assert gu.other == truth.iloc[3:].sum() and gu.type == "category" and gu.bins is None
    dates = column_detail(path, "설치일자", bins=4)
    assert dates.type == "date" and sum(b.count for b in dates.bins) == frame["설치일자"].notna().sum()
    assert dates.bins[0].start == frame["설치일자"].min().date().isoformat()
    assert column_detail(path, "위도").type == "coordinate"
    with pytest.raises(QueryError) as caught:
        column_detail(path, "nope")
    assert caught.value.field == "column"


def test_points_are_valid_and_sampled_deterministically(table: tuple[Path, pd.DataFrame]) -> None:
    path, frame = table
    valid = frame["위도"].notna() & frame["경도"].notna()
    everything = points(path, "위도", "경도", ["관리번호"], cap=5000)
    assert everything.total == valid.sum() and everything.left_out == 0
    assert [p["row"] for p in everything.points] == np.flatnonzero(valid).tolist()
    first = everything.points[0]
    assert (first["lat"], first["lon"], first["관리번호"]) == tuple(
        frame.loc[first["row"], ["위도", "경도", "관리번호"]]
    )
    sample = points(path, "위도", "경도", ["시군구명"], cap=500, seed=1)
    assert len(sample.points) == 500 and sample.left_out == valid.sum() - 500 and sample.total == valid.sum()
    rows = [p["row"] for p in sample.points]
    assert rows == sorted(rows) and all(valid[r] for r in rows)
    assert points(path, "위도", "경도", ["시군구명"], cap=500, seed=1) == sample
    assert [p["row"] for p in points(path, "위도", "경도", [], cap=500, seed=2).points] != rows
    with pytest.raises(QueryError) as caught:
        points(path, "위도", "시군구명", [])
    assert caught.value.field == "longitude"


def test_concurrent_queries_and_a_rewritten_file(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"g": ["a", "b"] * 500, "x": np.arange(1000.0)}), path)
    query = TableQuery(group_by=["g"], aggregates=[Aggregate(op="sum", column="x")])
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: run_query(path, query).rows, range(16)))
    assert all(a == [{"g": "a", "sum_x": 249500.0}, {"g": "b", "sum_x": 250000.0}] for a in answers)
    pq.write_table(pa.table({"h": [1, 2, 3]}), path)  # the same path, another table
    assert run_query(path, {"aggregates": [{"op": "sum", "column": "h"}]}).rows == [{"sum_h": 6}]
    with pytest.raises(QueryError) as caught:
        run_query(path, query)
    assert caught.value.field == "group_by[0]" and caught.value.allowed == ["h"]
