import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.explore.errors import QueryError
from backend.explore.spatial import EARTH_RADIUS_M, near, parse_address, per_dong
from tests.explore.generated import LAT_BOX, LON_BOX, accidents_frame, as_parquet

pytestmark = pytest.mark.unit


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def places(n: int, seed: int, box: float = 0.05) -> pd.DataFrame:
    """Random points in a small part of Daegu (so that a few hundred metres hold some), a few without coordinates."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "이름": [f"p{seed}-{i}" for i in range(n)],
            "위도": rng.uniform(35.85, 35.85 + box, n),
            "경도": rng.uniform(128.55, 128.55 + box, n),
        }
    )
    frame.loc[rng.choice(n, 7, replace=False), "위도"] = np.nan
    return frame


@pytest.fixture(scope="module")
def two_tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("near")
    a, b = places(300, 1), places(300, 2)
    return as_parquet(a, folder, "a"), a, as_parquet(b, folder, "b", encoding="utf-8-sig"), b


@pytest.mark.parametrize("radius", [150.0, 600.0, 2500.0])
def test_near_counts_equal_a_brute_force_double_loop(two_tables, radius: float) -> None:
    a_path, a, b_path, b = two_tables
    result = near(a_path, ("위도", "경도"), b_path, ("위도", "경도"), radius, columns=["이름"])
    b_points = [(lat, lon) for lat, lon in zip(b["위도"], b["경도"], strict=True) if not math.isnan(lat)]
    expected = {}
    for i, (lat, lon) in enumerate(zip(a["위도"], a["경도"], strict=True)):
        if math.isnan(lat):
            continue
        distances = [haversine(lat, lon, blat, blon) for blat, blon in b_points]
        expected[i] = (sum(d <= radius for d in distances), min(distances))
    got = {r["row"]: (r["count"], r["nearest_m"]) for r in result.rows}
    assert got.keys() == expected.keys()
    for row, (count, nearest) in expected.items():
        assert got[row][0] == count, row
        assert got[row][1] == pytest.approx(nearest, abs=1e-3)
    counts = [r["count"] for r in result.rows]
    assert counts == sorted(counts, reverse=True)
    assert all(r["이름"] == a["이름"].iat[r["row"]] for r in result.rows)
    summary = result.summary
    values = np.array([c for c, _ in expected.values()])
    assert summary["rows_with_coordinates"] == len(expected) == 293 and summary["other_rows_with_coordinates"] == 293
    assert summary["mean_count"] == pytest.approx(values.mean()) and summary["max_count"] == values.max()
    assert summary["median_count"] == pytest.approx(np.median(values))
    assert summary["share_with_none"] == pytest.approx((values == 0).mean()) and summary["radius_m"] == radius


def test_near_limit_self_and_refusals(two_tables) -> None:
    a_path, a, b_path, _ = two_tables
    top = near(a_path, ("위도", "경도"), b_path, ("위도", "경도"), 600, limit=5)
    assert len(top.rows) == 5 and top.summary["truncated"]
    own = near(a_path, ("위도", "경도"), a_path, ("위도", "경도"), 600, exclude_self=True)
    points = [(i, lat, lon) for i, (lat, lon) in enumerate(zip(a["위도"], a["경도"], strict=True)) if lat == lat]
    for r in own.rows[:20]:
        _, lat, lon = points[[p[0] for p in points].index(r["row"])]
        others = [haversine(lat, lon, p[1], p[2]) for p in points if p[0] != r["row"]]
        assert r["count"] == sum(d <= 600 for d in others) and r["nearest_m"] == pytest.approx(min(others), abs=1e-3)
    for kwargs, field in [
        ({"radius_m": 0}, "radius_m"),
        ({"radius_m": float("nan")}, "radius_m"),
        ({"b_coords": ("위도", "이름")}, "b_coords[1]"),
        ({"a_coords": ("lat", "경도")}, "a_coords[0]"),
        ({"columns": ["nope"]}, "columns[0]"),
        ({"columns": ["count"]}, "columns[0]"),
        ({"limit": 0}, "limit"),
        ({"exclude_self": True}, "exclude_self"),
    ]:
        arguments = {"a_coords": ("위도", "경도"), "b_coords": ("위도", "경도"), "radius_m": 100.0, **kwargs}
        with pytest.raises(QueryError) as caught:
            near(
                a_path,
                arguments.pop("a_coords"),
                b_path,
                arguments.pop("b_coords"),
                arguments.pop("radius_m"),
                **arguments,
            )
        assert caught.value.field == field


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("대구광역시 남구 대명동 903-13", ("남구", "대명동")),
        ("대구광역시 중구 동성로1가", ("중구", "동성로1가")),
        ("대구광역시 중구 서성로1가41-3", ("중구", "서성로1가")),
        ("대구광역시 달성군 논공읍 북리 12", ("달성군", "논공읍")),
        ("대구광역시 달성군 다사읍 서재리 산 1-11", ("달성군", "다사읍")),
        ("대구광역시 중구 남산동912-5", ("중구", "남산동")),
        ("대구광역시 중구 남성로", ("중구", "남성로")),
        ("대구광역시 다사읍 세천리 1684-4", (None, "다사읍")),
        ("대구광역시 수성구", ("수성구", None)),
        ("대구 달성군 논공읍 북리 12", ("달성군", "논공읍")),
        ("남구 대명동 1", ("남구", "대명동")),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_address(address: str | None, expected: tuple[str | None, str | None]) -> None:
    assert parse_address(address) == expected


def test_per_dong_equals_pandas(tmp_path: Path) -> None:
    accidents = accidents_frame(600, seed=4)
    accidents_path = as_parquet(accidents.drop(columns=["_gu", "_dong"]), tmp_path, "accidents", encoding="utf-8")
    rng = np.random.default_rng(5)
    # side rows: (address, the (구, 동) it counts for, or None)
    cameras = [(f"대구광역시 {gu} {dong} {rng.integers(1, 900)}-{rng.integers(1, 9)}", (gu, dong)) for gu, dong in
               [("남구", "대명동")] * 5 + [("중구", "동성로1가")] * 3 + [("달성군", "논공읍")] * 2]  # fmt: skip
    cameras += [
        ("대구광역시 중구 남산동912-5", ("중구", "남산동")),  # lot number stuck to the 동
        ("대구광역시 대명동 12", ("남구", "대명동")),  # no 구, but 대명동 is in one 구 only
        ("대구광역시 중앙동 3", None),  # no 구, and 중앙동 is in two
        ("대구광역시 북구 침산동 1208", None),  # a 동 without accidents
        ("대구 달성군 논공읍 북리 5", ("달성군", "논공읍")),  # a short region
        ("대구광역시 달성군 화원면 7", ("달성군", "화원읍")),  # a 면 that became a 읍 keeps its name
        ("", None),
    ]
    zones = [("대구광역시 남구 봉덕동 853-8", ("남구", "봉덕동")), ("대구광역시 중구 중앙동 1", ("중구", "중앙동"))]
    side = {}
    for name, rows in (("cameras", cameras), ("zones", zones)):
        frame = pd.DataFrame(
            {"시설명": [f"{name}{i}" for i in range(len(rows))], "소재지지번주소": [a for a, _ in rows]}
        )
        frame["위도"], frame["경도"] = rng.uniform(*LAT_BOX, len(rows)), rng.uniform(*LON_BOX, len(rows))
        side[name] = as_parquet(frame, tmp_path, name)

    result = per_dong(accidents_path, side)

    located = accidents[accidents["_dong"].notna()]
    truth = (
        located.assign(severe=(located["사망자수"] + located["중상자수"]) > 0)
        .groupby(["_gu", "_dong"])
        .agg(count=("ID", "size"), severe_share=("severe", "mean"), mean_eclo=("ECLO", "mean"))
    )
    assert len(result.rows) == len(truth) == result.summary["dongs"]
    assert result.summary["accidents"] == 600 and result.summary["accidents_with_dong"] == len(located)
    for row in result.rows:
        expected = truth.loc[(row["gu"], row["dong"])]
        assert row["count"] == expected["count"]
        assert row["severe_share"] == pytest.approx(expected["severe_share"])
        assert row["mean_eclo"] == pytest.approx(expected["mean_eclo"])
        for name, rows in (("cameras", cameras), ("zones", zones)):
            assert row[name] == sum(1 for _, where in rows if where == (row["gu"], row["dong"])), (name, row)
    counts = [(-r["count"], r["gu"], r["dong"]) for r in result.rows]
    assert counts == sorted(counts)
    assert result.summary["side"]["cameras"] == {"rows": 17, "rows_with_dong": 15, "rows_in_accident_dongs": 14}
    with pytest.raises(QueryError) as caught:
        per_dong(side["zones"], side)
    assert caught.value.field == "accidents" and "시군구" in caught.value.message
