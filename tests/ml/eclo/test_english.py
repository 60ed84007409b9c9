"""English hints (vocabulary.ENGLISH) as input values, and the "did you mean" of an unknown value."""

import pytest

from backend.ml.eclo.features import FeatureEncoder, english_index, normal_text, shown_with_english
from backend.ml.eclo.model import EcloModel
from backend.ml.eclo.vocabulary import ENGLISH
from backend.ml.errors import InvalidRow

ENGLISH_SPELLINGS = [
    {"weather": "clear", "road_surface": "DRY", "road_type": "Intersection", "accident_type": "vehicle-vehicle",
     "district": "Jung-gu", "day_of_week": "Mon"},
    {"weather": "Clear", "road_surface": "dry", "road_type": "intersection", "accident_type": "Vehicle Vehicle",
     "district": "jung-gu", "day_of_week": "monday"},
    {"weather": " CLEAR ", "road_surface": "Dry", "road_type": "INTERSECTION", "accident_type": "vehicle_vehicle",
     "district": "JUNG GU", "day_of_week": "MON"},
    {"district": "대구광역시 Jung-gu"},
    {"district": "Daegu Jung-gu"},
    {"weather": "맑음", "road_type": "intersection"},  # Korean and English mixed
]  # fmt: skip


def test_normal_text_ignores_case_spaces_and_hyphens() -> None:
    assert {normal_text(v) for v in ("Jung-gu", "jung-gu", "JUNG GU", "jung_gu", " Jung - Gu ")} == {"junggu"}
    assert normal_text("Jungu") != normal_text("Jung-gu")


def test_a_hint_shared_by_two_values_of_a_field_names_neither() -> None:
    index = english_index(["기타", "비", "흐림"], {"기타": "other", "비": "Other", "흐림": "cloudy"})
    assert index == {"cloudy": "흐림"}
    assert english_index(["월요일"]) == {"mon": "월요일", "monday": "월요일"}


def test_shown_with_english() -> None:
    assert shown_with_english("중구") == "중구 (Jung-gu)"
    assert shown_with_english("교차로 - 교차로안") == "교차로 - 교차로안 (intersection - inside)"
    assert shown_with_english("중구 동성로1가") == "중구 동성로1가"


@pytest.mark.parametrize("english", ENGLISH_SPELLINGS)
def test_english_values_encode_and_predict_as_the_korean_ones(
    small_model: EcloModel, classic_row: dict, english: dict
) -> None:
    korean = small_model.encode(classic_row)
    encoded = small_model.encode({**classic_row, **english})
    assert encoded.features.tobytes() == korean.features.tobytes() and encoded.notes == korean.notes
    assert small_model.predict_one({**classic_row, **english}) == small_model.predict_one(classic_row)
    small_model.validate({**classic_row, **english})


def _with_hint(values: list[str]) -> list[str]:
    return [v for v in values if all(part in ENGLISH for part in v.split(" - "))]


def test_every_hinted_value_of_the_model_is_accepted_in_english(small_model: EcloModel, classic_row: dict) -> None:
    vocabularies = small_model.encoder.vocabularies
    fields = {"weather": "weather", "road_surface": "road_surface", "accident_type": "accident_type",
              "day_of_week": "day_of_week", "district": "gu", "time_period": "time_period"}  # fmt: skip
    checked = 0
    for field, feature in fields.items():
        for value in _with_hint(vocabularies[feature]):
            korean = small_model.encode({**classic_row, field: value})
            english = small_model.encode({**classic_row, field: ENGLISH[value].upper()})
            assert english.features.tobytes() == korean.features.tobytes(), (field, value)
            checked += 1
    for value in _with_hint(vocabularies["road_minor"]):
        major, minor = value.split(" - ")
        for given in (f"{ENGLISH[major]} - {ENGLISH[minor]}", f"{major} - {ENGLISH[minor]}"):
            korean = small_model.encode({**classic_row, "road_type": value})
            english = small_model.encode({**classic_row, "road_type": given})
            assert english.features.tobytes() == korean.features.tobytes() and english.notes == korean.notes, given
            checked += 1
    assert checked > 20


def test_english_time_band_and_an_unseen_dong(small_model: EcloModel, classic_row: dict) -> None:
    korean = small_model.encode({**classic_row, "time_period": "출근시간대", "district": "중구 없는동1가"})
    for period in ("morning rush 7-9h", "Morning Rush"):
        english = small_model.encode({**classic_row, "time_period": period, "district": "JUNG GU 없는동1가"})
        assert english.features.tobytes() == korean.features.tobytes() and english.notes == korean.notes
    assert "predicted at the 구/군 level (중구)" in korean.notes[0]


def _errors(model_or_encoder: EcloModel | FeatureEncoder, row: dict) -> dict[str, str]:
    with pytest.raises(InvalidRow) as caught:
        model_or_encoder.encode(row)
    return {e.field: e.message for e in caught.value.errors}


def test_an_unknown_value_suggests_the_closest_allowed_ones(small_model: EcloModel, classic_row: dict) -> None:
    message = _errors(small_model, {**classic_row, "district": "Jungu"})["district"]
    assert message.startswith("unknown value 'Jungu'; allowed: ")
    assert "did you mean 중구 (Jung-gu)" in message
    message = _errors(small_model, {**classic_row, "day_of_week": "Mond"})["day_of_week"]
    assert "did you mean 월요일 (Mon)" in message
    message = _errors(small_model, {**classic_row, "district": "대구광역시 중군"})["district"]
    assert "중구 (Jung-gu)" in message.partition("did you mean")[2]
    message = _errors(small_model, {**classic_row, "road_type": "intersecton - inside"})["road_type"]
    assert "did you mean 교차로 (intersection)" in message


def test_suggestions_come_also_when_another_field_does_not_parse(small_model: EcloModel, classic_row: dict) -> None:
    errors = _errors(small_model, {**classic_row, "accident_hour": 30, "weather": "Clear", "district": "Jungu"})
    assert set(errors) == {"accident_hour", "district"}  # English weather accepted
    assert "did you mean 중구 (Jung-gu)" in errors["district"]


def test_an_ambiguous_hint_is_refused_with_both_values_suggested(
    small_model: EcloModel, classic_row: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "흐림" in small_model.encoder.vocabularies["weather"]
    monkeypatch.setitem(ENGLISH, "흐림", "clear")
    encoder = FeatureEncoder(small_model.encoder.vocabularies)
    message = _errors(encoder, {**classic_row, "weather": "clear"})["weather"]
    assert "맑음 (clear)" in message and "흐림 (clear)" in message
    encoder.encode({**classic_row, "weather": "맑음"})


def test_details_keep_the_full_allowed_list(small_model: EcloModel, classic_row: dict) -> None:
    with pytest.raises(InvalidRow) as caught:
        small_model.encode({**classic_row, "weather": "sunny"})
    (error,) = caught.value.errors
    assert error.allowed == small_model.allowed_values()["weather"]
