import math

import numpy as np
import pytest

from backend.ml.eclo.features import (
    FEATURE_INDEX,
    YEAR_RANGE,
    FeatureEncoder,
    _holidays_of_year,
    learn_vocabularies,
    parse_row,
    split_district,
    split_road_type,
    time_period_for_hour,
)
from backend.ml.eclo.model import EcloModel
from backend.ml.errors import InvalidRow


@pytest.mark.parametrize(
    ("hour", "period"),
    [
        (7, "출근시간대"),
        (9, "출근시간대"),
        (10, "일반시간대"),
        (16, "일반시간대"),
        (17, "퇴근시간대"),
        (19, "퇴근시간대"),
        (20, "일반시간대"),
        (21, "일반시간대"),
        (22, "심야"),
        (0, "심야"),
        (5, "심야"),
        (6, "일반시간대"),
        (14, "일반시간대"),
    ],
)
def test_time_period_for_hour(hour: int, period: str) -> None:
    assert time_period_for_hour(hour) == period


def test_time_period_covers_every_hour_once() -> None:
    periods = [time_period_for_hour(h) for h in range(24)]
    assert periods.count("출근시간대") == 3 and periods.count("퇴근시간대") == 3 and periods.count("심야") == 8


@pytest.mark.parametrize(
    ("label", "hour", "expected"),
    [
        (None, 8, "출근시간대"),
        ("", 23, "심야"),
        ("낮", 14, "일반시간대"),
        ("낮", 18, "퇴근시간대"),
        ("밤", 2, "심야"),
        ("아침", 8, "출근시간대"),
        ("저녁", 18, "퇴근시간대"),
        ("새벽", 4, "심야"),
        ("출근시간대", 14, "출근시간대"),
    ],
)
def test_time_period_derived_or_mapped(classic_row: dict, label: str | None, hour: int, expected: str) -> None:
    classic_row.update(time_period=label, accident_hour=hour)
    assert parse_row(classic_row).time_period == expected


def test_split_district_coarse_and_fine() -> None:
    assert split_district("대구광역시 중구 동성로1가") == ("중구", "중구 동성로1가")
    assert split_district("중구") == ("중구", None)
    assert split_district("대구광역시 수성구") == ("수성구", None)
    assert split_district("달성군 화원읍") == ("달성군", "달성군 화원읍")


def test_split_road_type_coarse_and_fine() -> None:
    assert split_road_type("교차로 - 교차로안") == ("교차로", "교차로 - 교차로안")
    assert split_road_type("교차로") == ("교차로", None)
    assert split_road_type("단일로 - 지하차도(도로)내") == ("단일로", "단일로 - 지하차도(도로)내")


def test_parse_row_names_every_bad_field(classic_row: dict) -> None:
    del classic_row["weather"]
    classic_row.update(accident_hour=24, accident_month="x", district="")
    with pytest.raises(InvalidRow) as caught:
        parse_row(classic_row)
    by_field = {e.field: e.message for e in caught.value.errors}
    assert set(by_field) == {"weather", "accident_hour", "accident_month", "district"}
    assert "between 0 and 23" in by_field["accident_hour"]
    assert by_field["weather"] == "field required"


def test_parse_row_rejects_impossible_date(classic_row: dict) -> None:
    classic_row.update(accident_year=2023, accident_month=2, accident_day=29)
    with pytest.raises(InvalidRow) as caught:
        parse_row(classic_row)
    assert [e.field for e in caught.value.errors] == ["accident_day"]
    classic_row.update(accident_year=2024)
    assert parse_row(classic_row).day == 29


def test_parse_row_allows_years_outside_training(classic_row: dict) -> None:
    classic_row["accident_year"] = 2031
    assert parse_row(classic_row).year == 2031


@pytest.fixture
def encoder(classic_row: dict) -> FeatureEncoder:
    rows = [
        parse_row({**classic_row, "district": "대구광역시 중구 동성로1가", "road_type": "교차로 - 교차로안"}),
        parse_row(
            {
                **classic_row,
                "district": "대구광역시 수성구 범어동",
                "road_type": "단일로 - 기타",
                "weather": "비",
            }
        ),
        parse_row({**classic_row, "day_of_week": "토요일"}),
    ]
    return FeatureEncoder(learn_vocabularies(rows))


def test_unknown_category_names_field_and_allowed_values(encoder: FeatureEncoder, classic_row: dict) -> None:
    classic_row.update(weather="폭풍", accident_type="비행기")
    with pytest.raises(InvalidRow) as caught:
        encoder.encode(classic_row)
    errors = {e.field: e for e in caught.value.errors}
    assert set(errors) == {"weather", "accident_type"}
    assert errors["weather"].allowed == ["맑음", "비"]
    assert "'폭풍'" in errors["weather"].message and "맑음, 비" in errors["weather"].message
    assert errors["accident_type"].allowed == ["차대차"]


def test_unknown_gu_and_road_major_are_rejected(encoder: FeatureEncoder, classic_row: dict) -> None:
    classic_row.update(district="대구광역시 없는구 없는동", road_type="주차장 - 주차장")
    with pytest.raises(InvalidRow) as caught:
        encoder.encode(classic_row)
    errors = {e.field: e for e in caught.value.errors}
    assert set(errors) == {"district", "road_type"}
    assert "중구 동성로1가" in errors["district"].allowed and "중구" in errors["district"].allowed
    assert "'대구광역시 없는구 없는동'" in errors["district"].message
    assert "교차로 - 교차로안" in errors["road_type"].allowed


def test_unknown_dong_and_road_minor_are_coarsened_with_notes(encoder: FeatureEncoder, classic_row: dict) -> None:
    coarse = encoder.encode({**classic_row, "district": "중구", "road_type": "교차로"})
    unseen = encoder.encode({**classic_row, "district": "대구광역시 중구 없는동", "road_type": "교차로 - 터널"})
    assert np.array_equal(unseen.features, coarse.features, equal_nan=True)
    assert coarse.notes == ()
    district, road = unseen.notes
    assert district.startswith("district:") and "'없는동'" in district and "구/군 level (중구)" in district
    assert road.startswith("road_type:") and "'교차로 - 터널'" in road and "major class (교차로)" in road


def test_coarse_values_leave_fine_feature_missing(encoder: FeatureEncoder, classic_row: dict) -> None:
    coarse = encoder.encode(classic_row).features
    fine = encoder.encode({**classic_row, "district": "대구광역시 중구 동성로1가", "road_type": "교차로 - 교차로안"})
    assert math.isnan(coarse[FEATURE_INDEX["road_minor"]])
    assert coarse[FEATURE_INDEX["gu"]] == fine.features[FEATURE_INDEX["gu"]] and fine.notes == ()
    assert not np.isnan(fine.features[FEATURE_INDEX["road_minor"]])


def test_holiday_and_weekend_flags(encoder: FeatureEncoder, classic_row: dict) -> None:
    christmas = encoder.encode({**classic_row, "accident_month": 12, "accident_day": 25, "day_of_week": "월요일"})
    workday = encoder.encode({**classic_row, "accident_month": 12, "accident_day": 10, "day_of_week": "월요일"})
    saturday = encoder.encode({**classic_row, "accident_month": 12, "accident_day": 14, "day_of_week": "토요일"})
    holiday, weekend = FEATURE_INDEX["is_holiday"], FEATURE_INDEX["is_weekend"]
    assert (christmas.features[holiday], christmas.features[weekend]) == (1.0, 0.0)
    assert (workday.features[holiday], workday.features[weekend]) == (0.0, 0.0)
    assert (saturday.features[holiday], saturday.features[weekend]) == (0.0, 1.0)


def test_type_and_vocabulary_errors_are_reported_together(encoder: FeatureEncoder, classic_row: dict) -> None:
    classic_row.update(weather="폭풍", accident_hour=99, district="대구광역시 없는구 없는동", wether="맑음")
    with pytest.raises(InvalidRow) as caught:
        encoder.encode(classic_row)
    assert sorted(e.field for e in caught.value.errors) == ["accident_hour", "district", "weather", "wether"]
    assert "unknown field" in next(e.message for e in caught.value.errors if e.field == "wether")


def test_a_bad_road_pair_is_named_beside_other_bad_fields(encoder: FeatureEncoder, classic_row: dict) -> None:
    classic_row.update(weather="폭풍", road_type="주차장 - 주차장", district="없는구 없는동")
    with pytest.raises(InvalidRow) as caught:
        encoder.encode(classic_row)
    assert sorted(e.field for e in caught.value.errors) == ["district", "road_type", "weather"]


def test_long_texts_and_many_unknown_fields_are_refused_without_echoing_them(classic_row: dict) -> None:
    with pytest.raises(InvalidRow) as refused:
        parse_row({**classic_row, "weather": "맑" * 100_000, **{f"x{i}" * 50: 1 for i in range(30)}})
    errors = {e.field: e.message for e in refused.value.errors}
    assert errors["weather"] == "longer than 200 characters (100000)"
    assert errors["row"] == "30 unknown fields in all" and len(errors) == 12
    assert max(len(f) for f in errors) <= 60 and sum(len(m) for m in errors.values()) < 3000


def test_every_accepted_years_holidays_are_loaded_with_the_model(small_model: EcloModel) -> None:
    """No request computes a year's holidays (the first one of each year waited for it, the very first ~70 ms)."""
    assert _holidays_of_year.cache_info().currsize >= YEAR_RANGE[1] - YEAR_RANGE[0] + 1
    misses = _holidays_of_year.cache_info().misses
    assert (3, 1) in _holidays_of_year(2024) and (12, 25) in _holidays_of_year(1970)  # 삼일절, 성탄절
    assert _holidays_of_year.cache_info().misses == misses
