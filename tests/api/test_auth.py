"""API keys on a real uvicorn with AUTH_ENABLED=true: keys made by the CLI, 401 without one, 403 without the
route's scope, batches readable by their own key, records naming the key, revocation."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from sqlalchemy import text

from backend.db.session import make_engine
from tests.fixtures.auth import Secured, cli

BATCH_ID = "0" * 32


def test_without_a_key_predictions_listings_and_results_answer_401(secured: Secured, classic_row: dict) -> None:
    with secured.client() as anonymous:
        answers = [
            anonymous.post("/api/predict/eclo", json=classic_row),
            anonymous.post("/api/predict/eclo/batch", json={"items": [classic_row]}),
            anonymous.get("/api/predictions"),
            anonymous.get("/api/predict/batch"),
            anonymous.get(f"/api/predict/batch/{BATCH_ID}/results"),
            anonymous.get("/api/datasets"),
            anonymous.get("/api/traffic/sensors"),
            anonymous.get("/api/models"),
            anonymous.get("/metrics"),
        ]
        for response in answers:
            assert response.status_code == 401, (response.request.url, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in answers[0].json()["error"]["message"]
        # Health, the OpenAPI document and share links need no key.
        assert anonymous.get("/health/live").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.get("/api/shared/unknown-token").status_code == 404


PUBLIC = ("/health", "/api/shared/")  # share links: their token is the credential


def test_every_route_of_the_openapi_document_but_the_public_ones_needs_a_key(secured: Secured) -> None:
    """A route added without a scope shows here: each operation is called without a key, its path filled in."""
    with secured.client() as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
        called = 0
        for path, operations in paths.items():
            if path.startswith(PUBLIC):
                continue
            url = re.sub(r"\{[^}]+\}", "0123456789ab", path)
            for method in operations:
                answer = anonymous.request(method.upper(), url)
                assert answer.status_code == 401, (method, path, answer.status_code)
                called += 1
    assert called >= 30


@pytest.mark.parametrize(
    "header",
    ["Bearer tpk_000000000000_" + "A" * 43, "Bearer not-a-key", "Basic dXNlcjpwYXNz", "Bearer"],
)
def test_unknown_or_malformed_keys_answer_401(secured: Secured, header: str) -> None:
    response = httpx.get(f"{secured.url}/api/predictions", headers={"Authorization": header})
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_a_predict_key_predicts_but_cannot_list(secured: Secured, classic_row: dict) -> None:
    with secured.client(secured.keys["predictor"]) as predictor:
        assert predictor.post("/api/predict/eclo", json=classic_row).status_code == 200
        assert predictor.get("/api/models").status_code == 200
        for path in ("/api/predictions", "/api/predict/batch", "/api/datasets", "/api/traffic/current", "/metrics"):
            response = predictor.get(path)
            assert response.status_code == 403, (path, response.text)
            error = response.json()["error"]
            assert error["code"] == "forbidden" and "'read'" in error["message"]
            assert error["details"] == [{"scope": "read", "key_scopes": ["predict"]}]
        upload = predictor.post("/api/datasets", files={"file": ("a.csv", b"x\n1\n", "text/csv")})
        assert upload.status_code == 403 and "'admin'" in upload.json()["error"]["message"]


def test_a_read_key_lists_but_cannot_predict(secured: Secured, classic_row: dict) -> None:
    with secured.client(secured.keys["reader"]) as reader:
        assert reader.get("/api/predictions").status_code == 200
        assert reader.get("/metrics").status_code == 200
        assert reader.post("/api/predict/eclo", json=classic_row).status_code == 403


def test_a_batch_is_read_by_its_own_key_and_by_read_keys_only(secured: Secured, classic_row: dict) -> None:
    with secured.client(secured.keys["predictor"]) as owner:
        accepted = owner.post("/api/predict/eclo/batch", json={"items": [classic_row]})
        assert accepted.status_code == 202, accepted.text
        poll = accepted.json()["poll_url"]
        assert owner.get(poll).status_code == 200
    with secured.client(secured.keys["other"]) as other:
        refused = other.get(poll)
        assert refused.status_code == 403 and "another API key" in refused.json()["error"]["message"]
    with secured.client(secured.keys["reader"]) as reader:
        assert reader.get(poll).status_code == 200
    engine = make_engine(secured.env["DATABASE_URL"])
    try:
        deadline = time.monotonic() + 10
        owner_id = secured.keys["predictor"].split("_")[1]
        batch_id = poll.split("/")[-2]
        while time.monotonic() < deadline:  # the batch's row is written by the recorder thread, shortly after
            with engine.connect() as connection:
                row = connection.execute(text("SELECT owner FROM batch_jobs WHERE id = :id"), {"id": batch_id}).first()
            if row is not None:
                break
            time.sleep(0.1)
        assert row is not None and row.owner == owner_id
    finally:
        engine.dispose()


def test_a_prediction_is_recorded_with_the_key_that_asked_and_listed_by_it(secured: Secured, classic_row: dict) -> None:
    asked = {}
    for name in ("predictor", "other"):
        with secured.client(secured.keys[name]) as client:
            answer = client.post("/api/predict/eclo", json=classic_row)
            assert answer.status_code == 200, answer.text
            asked[name] = (secured.keys[name].split("_")[1], answer.headers["x-request-id"])
    with secured.client(secured.keys["reader"]) as reader:
        for key_id, request_id in asked.values():
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the recorder thread writes the record shortly after the answer
                listed = reader.get("/api/predictions", params={"key_id": key_id, "size": 200})
                assert listed.status_code == 200, listed.text
                if request_id in {r["request_id"] for r in listed.json()["items"]}:
                    break
                time.sleep(0.1)
            records = listed.json()["items"]
            assert request_id in {r["request_id"] for r in records}
            assert {r["key_id"] for r in records} == {key_id}
        refused = reader.get("/api/predictions", params={"key_id": "tpk_not-an-id"})
        assert refused.status_code == 422 and "key_id" in refused.text


def test_keys_are_stored_hashed(secured: Secured) -> None:
    engine = make_engine(secured.env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            stored = " ".join(str(v) for row in connection.execute(text("SELECT * FROM api_keys")) for v in row)
    finally:
        engine.dispose()
    for key in secured.keys.values():
        _, key_id, secret = key.split("_", 2)  # the secret itself may hold "_"
        assert key_id in stored and secret not in stored


def test_a_new_key_works_at_once_and_a_revoked_one_stops_within_the_cache_time(
    secured: Secured, classic_row: dict
) -> None:
    made = cli(secured.env, "create", "short-lived", "--scopes", "predict")
    key = made.stdout.strip()
    with secured.client(key) as client:
        assert client.post("/api/predict/eclo", json=classic_row).status_code == 200
        revoked = cli(secured.env, "revoke", key.split("_")[1])
        assert revoked.returncode == 0, revoked.stderr
        time.sleep(1.2)  # AUTH_CACHE_SECONDS=1
        assert client.post("/api/predict/eclo", json=classic_row).status_code == 401
    listing = cli(secured.env, "list").stdout
    assert "short-lived" in listing and "revoked" in listing and key not in listing


def test_the_cli_refuses_unknown_scopes(secured: Secured) -> None:
    made = cli(secured.env, "create", "bad", "--scopes", "predict,write")
    assert made.returncode == 2 and "predict, read, admin" in made.stderr
