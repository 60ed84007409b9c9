"""The API meets callers halfway: English category values, "did you mean", and a bare list sent as a batch."""

import pytest
from fastapi.testclient import TestClient

ENGLISH_ROWS = [
    {"weather": "clear", "road_surface": "dry", "road_type": "intersection", "accident_type": "vehicle-vehicle",
     "district": "Jung-gu", "day_of_week": "Mon"},
    {"weather": "CLEAR", "road_surface": "Dry", "road_type": "Intersection", "accident_type": "Vehicle Vehicle",
     "district": "JUNG GU", "day_of_week": "monday"},
    {"district": "jung-gu", "time_period": "evening rush 17-19h", "accident_hour": 18},
]  # fmt: skip


@pytest.mark.parametrize("english", ENGLISH_ROWS)
def test_english_values_answer_as_the_korean_ones(app_client: TestClient, classic_row: dict, english: dict) -> None:
    korean = {**classic_row, "accident_hour": english.get("accident_hour", classic_row["accident_hour"])}
    if "time_period" in english:
        korean["time_period"] = "퇴근시간대"
    first = app_client.post("/api/predict/eclo", json=korean)
    assert first.status_code == 200, first.text
    cached = app_client.post("/api/predict/eclo", json=korean)  # the English row has the same features: a hit
    answer = app_client.post("/api/predict/eclo", json={**korean, **english})
    assert answer.status_code == 200, answer.text
    assert answer.content == cached.content
    assert {**first.json(), "cached": True} == answer.json()


def test_unknown_value_suggests_the_closest(app_client: TestClient, classic_row: dict) -> None:
    response = app_client.post("/api/predict/eclo", json={**classic_row, "district": "Jungu", "weather": "cloudi"})
    assert response.status_code == 422
    error = response.json()["error"]
    fields = {d["field"]: d for d in error["details"]}
    assert set(fields) == {"district", "weather"}
    assert fields["district"]["message"].startswith("unknown value 'Jungu'; allowed: ")
    assert "did you mean 중구 (Jung-gu)" in fields["district"]["message"]
    assert "흐림 (cloudy)" in fields["weather"]["message"].partition("did you mean")[2]
    assert "중구" in fields["district"]["allowed"] and "맑음" in fields["weather"]["allowed"]


def test_unknown_english_word_is_refused(app_client: TestClient, classic_row: dict) -> None:
    response = app_client.post("/api/predict/eclo", json={**classic_row, "road_surface": "dri"})
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "road_surface" and "did you mean 건조 (dry)" in detail["message"]


def test_a_bare_list_to_a_batch_route_is_told_to_wrap_it(app_client: TestClient, classic_row: dict) -> None:
    response = app_client.post("/api/predict/eclo/batch", json=[classic_row, classic_row])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert '{"items": [...]}' in error["message"] and "wrap the rows" in error["message"]
    wrap = 'the body must be an object: wrap the rows in {"items": [...]}'
    assert error["details"] == [{"field": "body", "message": wrap}]


def test_an_object_batch_is_still_accepted(app_client: TestClient, classic_row: dict) -> None:
    response = app_client.post("/api/predict/eclo/batch", json={"items": [{**classic_row, "district": "Jung-gu"}]})
    assert response.status_code == 202, response.text
