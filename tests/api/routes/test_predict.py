"""Single predictions through a real uvicorn server."""

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.core.config import Settings
from backend.main import create_app
from backend.ml.eclo.model import EcloModel
from backend.tasks.batches import run_batch
from backend.wiring import Resources


def test_classic_example(api: httpx.Client, classic_row: dict, small_model: EcloModel) -> None:
    response = api.post("/api/predict/eclo", json=classic_row)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = small_model.predict_one(classic_row)
    assert body["eclo"] == expected.eclo and body["risk_level"] == expected.risk_level
    assert body["p_severe"] == expected.p_severe and body["relative_risk"] == expected.relative_risk
    assert body["notes"] == [] and body["model_version"] == small_model.version
    assert [c["feature"] for c in body["explanation"]] == [c.feature for c in expected.explanation]
    assert response.headers["x-request-id"]


def test_the_answer_explains_the_expected_eclo_and_the_chance_of_a_severe_outcome(
    app_client: TestClient, app_resources: Resources, classic_row: dict, small_model: EcloModel
) -> None:
    """Both explanations, in single answers (fresh and cached) and in batch rows alike."""
    rows = [classic_row, {**classic_row, "accident_type": "차대사람", "accident_hour": 22, "district": "달서구"}]
    expected = [small_model.predict_one(row).to_dict() for row in rows]
    for row, want in zip(rows, expected, strict=True):
        fresh, cached = (app_client.post("/api/predict/eclo", json=row).json() for _ in range(2))
        assert (fresh["cached"], cached["cached"]) == (False, True)
        for body in (fresh, cached):
            assert body["explanation"] == want["explanation"] and len(body["explanation"]) == 5
            assert body["severe_explanation"] == want["severe_explanation"] and len(body["severe_explanation"]) == 5
    assert expected[0]["severe_explanation"] != expected[1]["severe_explanation"]

    accepted = app_client.post("/api/predict/eclo/batch", json={"items": rows})
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batch_id"]
    assert run_batch(app_resources, batch_id)["status"] == "success"
    results = app_client.get(f"/api/predict/batch/{batch_id}/results").json()["results"]
    assert [r["severe_explanation"] for r in results] == [w["severe_explanation"] for w in expected]

    documented = app_client.get("/openapi.json").json()["components"]["schemas"]
    assert "severe_explanation" in documented["EcloPredictionResponse"]["properties"]
    assert "log-odds" in documented["SevereContribution"]["properties"]["contribution"]["description"]


def test_second_identical_request_is_cached(api: httpx.Client, classic_row: dict) -> None:
    classic_row["accident_hour"] = 3
    first = api.post("/api/predict/eclo", json=classic_row).json()
    second = api.post("/api/predict/eclo", json=classic_row).json()
    assert second["cached"] is True
    assert {**first, "cached": True} == second


def test_unseen_dong_is_answered_at_the_gu_level_with_a_note(api: httpx.Client, classic_row: dict) -> None:
    gu_only = api.post("/api/predict/eclo", json={**classic_row, "district": "달성군"}).json()
    unseen = api.post("/api/predict/eclo", json={**classic_row, "district": "대구광역시 달성군 논공읍공단출장"})
    assert unseen.status_code == 200, unseen.text
    body = unseen.json()
    assert (body["eclo"], body["p_severe"], body["risk_level"]) == (gu_only["eclo"], gu_only["p_severe"],
                                                                    gu_only["risk_level"])  # fmt: skip
    assert gu_only["notes"] == [] and body["cached"] is False  # the note is part of the cached answer's key
    (note,) = body["notes"]
    assert note.startswith("district:") and "논공읍공단출장" in note


def test_every_bad_field_is_named(api: httpx.Client, classic_row: dict) -> None:
    classic_row.update(weather="폭풍", accident_hour=30, district="대구광역시 없는구")
    del classic_row["day_of_week"]
    response = api.post("/api/predict/eclo", json=classic_row)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    fields = {d["field"]: d for d in error["details"]}
    assert set(fields) == {"weather", "accident_hour", "district", "day_of_week"}
    assert "맑음" in fields["weather"]["allowed"] and "중구" in fields["district"]["allowed"]
    assert "between 0 and 23" in fields["accident_hour"]["message"]


def test_body_must_be_an_object(api: httpx.Client) -> None:
    response = api.post("/api/predict/eclo", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_request_id_is_echoed(api: httpx.Client, classic_row: dict) -> None:
    response = api.post("/api/predict/eclo", json=classic_row, headers={"X-Request-ID": "trace-me-1"})
    assert response.headers["x-request-id"] == "trace-me-1"


@pytest.mark.parametrize(
    "given", ["<script>alert(1)</script>", "=HYPERLINK(1)", "a" * 65, "id with space", "x;y", "요청-1", "café"]
)  # UTF-8 ids (sent as their bytes) were stored garbled
def test_a_request_id_outside_the_safe_alphabet_is_replaced(api: httpx.Client, classic_row: dict, given: str) -> None:
    response = api.post("/api/predict/eclo", json=classic_row, headers={"X-Request-ID": given.encode()})
    assert response.status_code == 200
    replaced = response.headers["x-request-id"]
    assert replaced != given and re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", replaced)


def test_unknown_route_uses_the_envelope(api: httpx.Client) -> None:
    response = api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_cors_allows_the_configured_origins_only(app_settings: Settings) -> None:
    headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    with TestClient(create_app(app_settings.model_copy(update={"cors_origins": ["https://dash.example"]}))) as api:
        allowed = api.options("/api/predict/eclo", headers={**headers, "Origin": "https://dash.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
        refused = api.options("/api/predict/eclo", headers={**headers, "Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in refused.headers
    with TestClient(create_app(app_settings)) as api:  # no origins configured: no CORS at all
        preflight = api.options("/api/predict/eclo", headers={**headers, "Origin": "https://dash.example"})
        assert "access-control-allow-origin" not in preflight.headers
