"""What the Explore page draws from the API's answers, without the API: formats, charts from bins and quantiles,
proximity colours, a 동's place from addresses."""

from __future__ import annotations

import pytest

from frontend.explore_charts import (
    box,
    chart_kinds,
    column_table,
    count_color,
    density,
    dong_places,
    gu_dong,
    histogram,
    mostly_missing,
    number,
    value_bars,
)

BINS = {"name": "제한속도", "type": "number", "bins": [{"start": s, "end": s + 10, "count": c} for s, c in
        zip(range(0, 100, 10), [5, 0, 30, 60, 40, 20, 10, 5, 0, 2], strict=True)]}  # fmt: skip


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "–"), (2019.0, "2019"), (12345.0, "12,345"), (35.83885696, "35.8389"), ("2015-12-31T23:00:00",
     "2015-12-31 23:00:00"), ("2020-03-23T00:00:00", "2020-03-23 00:00:00"), ("2020-03-23", "2020-03-23"),
     ("Tmap", "Tmap"), (float("nan"), "–"), (True, "true")],
)  # fmt: skip
def test_summary_numbers_are_short_and_never_none(value: object, shown: str) -> None:
    assert number(value) == shown


def test_the_column_table_and_the_mostly_missing_columns() -> None:
    columns = [
        {"name": "위도", "type": "coordinate", "missing_share": 0.03, "distinct": 290, "min": 35.8, "max": 35.95,
         "median": 35.87, "top": [{"value": 35.81, "count": 2}]},
        {"name": "비고", "type": "category", "missing_share": 0.8, "distinct": 1,
         "top": [{"value": "점검", "count": 60}]},
    ]  # fmt: skip
    table = column_table(columns)
    assert list(table["column"]) == ["위도", "비고"] and "None" not in table.to_string()
    assert table.loc[1, "most frequent"] == "점검 (60)" and table.loc[1, "median"] == "–"
    assert mostly_missing(columns) == [("비고", 0.8)]


def test_chart_kinds_follow_the_column_type() -> None:
    assert chart_kinds({"type": "number"}) == ["histogram", "box", "density"]
    assert chart_kinds({"type": "category"}) == ["bars"]
    assert "by hour" in chart_kinds({"type": "date", "storage": "timestamp[us]"})
    assert "by hour" not in chart_kinds({"type": "date", "storage": "date32[day]"})


def test_histogram_and_density_come_from_the_bins() -> None:
    bars = histogram(BINS).data[0]
    assert list(bars.y) == [5, 0, 30, 60, 40, 20, 10, 5, 0, 2] and list(bars.x)[:2] == [5, 15]
    curve = density(BINS).data[0]
    widths = 10
    assert len(curve.y) == 10 and abs(sum(curve.y) * widths - 1.0) < 1e-9  # a density: it integrates to 1
    assert max(curve.y) == curve.y[3] or max(curve.y) == curve.y[4]  # the peak stays where the data is


def test_a_box_from_the_quantile_summary_and_bars_with_the_rest() -> None:
    drawn = box({"name": "x", "min": 0, "q1": 30, "median": 50, "q3": 60, "max": 110, "mean": 48, "std": 20}).data[0]
    assert (drawn.q1, drawn.median, drawn.q3, drawn.lowerfence, drawn.upperfence) == ((30,), (50,), (60,), (0,), (110,))
    values = [{"value": "달서구", "count": 50}, {"value": "북구", "count": 40}]
    bars = value_bars({"name": "시군구명", "distinct": 12, "missing": 3, "other": 7, "values": values}).data[0]
    assert list(bars.y) == ["달서구", "북구", "(other values)", "(missing)"] and list(bars.x) == [50, 40, 7, 3]


def test_proximity_colours_and_dong_places() -> None:
    assert count_color(0) != count_color(1) != count_color(3) != count_color(7) != count_color(12)
    assert count_color(100) == count_color(10)
    assert gu_dong("대구광역시 남구 대명동 903-13") == ("남구", "대명동")
    assert gu_dong("대구광역시 중구 동성로1가 12") == ("중구", "동성로1가")
    assert gu_dong("대구광역시 남구 남산동912-5") == ("남구", "남산동")
    assert gu_dong(None) is None and gu_dong("주소 없음") is None
    points = [{"lat": 35.0, "lon": 128.0, "a": "대구광역시 남구 대명동 1"}, {"lat": 36.0, "lon": 129.0,
              "a": "대구광역시 남구 대명동 2"}, {"lat": 1.0, "lon": 1.0, "a": None}]  # fmt: skip
    assert dong_places(points, "a") == {("남구", "대명동"): (35.5, 128.5, 2)}
