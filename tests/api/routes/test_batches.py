"""Batches through a real uvicorn server, a real Redis and a real prefork Celery worker (concurrency 2)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from backend.api.deps import get_predictions, get_registry
from backend.db.models import BatchJob
from backend.ml.eclo.model import EcloModel
from backend.ml.kinds import MODEL_KINDS
from backend.ml.registry import ModelRegistry
from backend.predictions.entry import Predictions
from backend.schemas.pages import Position
from backend.tasks.batches import run_batch
from backend.wiring import Resources
from tests.fixtures.batches import submit, wait_for_batch


def test_hundred_rows_equal_single_predictions(api: httpx.Client, csv_rows: list[dict], small_model: EcloModel) -> None:
    rows = [dict(r) for r in csv_rows[:100]]
    rows[7]["district"] = "대구광역시 달성군 논공읍공단출장"  # a 동 the model has not seen: answered with a note
    accepted = submit(api, rows)
    assert accepted["status"] == "pending" and accepted["total"] == 100
    assert accepted["poll_url"] == f"/api/predict/batch/{accepted['batch_id']}/results"
    body = wait_for_batch(api, accepted["batch_id"])
    assert body["status"] == "success" and body["progress"] == {"done": 100, "total": 100}
    assert body["errors"] == []
    assert [r["index"] for r in body["results"]] == list(range(100))
    for row, result in zip(rows, body["results"], strict=True):
        single = small_model.predict_one(row)
        assert result["eclo"] == single.eclo and result["p_severe"] == single.p_severe
        assert result["relative_risk"] == single.relative_risk and result["risk_level"] == single.risk_level
        assert result["notes"] == list(single.notes)
        assert result["model_version"] == small_model.version
    assert "구/군 level (달성군)" in body["results"][7]["notes"][0]


def test_three_bad_rows_make_a_partial_batch(api: httpx.Client, csv_rows: list[dict]) -> None:
    rows = [dict(r) for r in csv_rows[:100]]
    rows[5]["weather"] = "폭풍"
    rows[50] = {"weather": "맑음"}
    rows[99] = "not an object"
    body = wait_for_batch(api, submit(api, rows)["batch_id"])
    assert body["status"] == "partial"
    assert [e["index"] for e in body["errors"]] == [5, 50, 99]
    assert len(body["results"]) == 97 and 5 not in {r["index"] for r in body["results"]}
    assert body["errors"][0]["details"][0]["field"] == "weather"
    assert "road_surface" in {d["field"] for d in body["errors"][1]["details"]}


def test_all_bad_rows_fail_the_batch(api: httpx.Client) -> None:
    body = wait_for_batch(api, submit(api, [{"weather": "?"}] * 3)["batch_id"])
    assert body["status"] == "failure" and len(body["errors"]) == 3 and body["results"] == []


def test_101_rows_are_too_many(api: httpx.Client, csv_rows: list[dict]) -> None:
    response = api.post("/api/predict/eclo/batch", json={"items": csv_rows[:101]})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert error["message"] == "a batch holds at most 100 rows; got 101"


def test_empty_batch_is_invalid(api: httpx.Client) -> None:
    response = api.post("/api/predict/eclo/batch", json={"items": []})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "items"


def test_missing_items_field_is_named(api: httpx.Client) -> None:
    response = api.post("/api/predict/eclo/batch", json={"rows": []})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["items"]


def test_unknown_batch_is_404(api: httpx.Client) -> None:
    response = api.get("/api/predict/batch/0123456789abcdef0123456789abcdef/results")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_concurrent_batches_all_finish(api: httpx.Client, csv_rows: list[dict]) -> None:
    """Several batches at once on a prefork pool of 2: catches LightGBM's OpenMP deadlock after fork."""
    ids = [submit(api, csv_rows[i * 20 : (i + 1) * 20])["batch_id"] for i in range(8)]
    assert all(wait_for_batch(api, batch_id, timeout=30)["status"] == "success" for batch_id in ids)


# In-process: the app under TestClient on the real test Redis; the batch task run directly, as a worker would.


def test_a_batch_of_the_second_kind_in_process(app_client: TestClient, app_resources: Resources) -> None:
    accepted = app_client.post("/api/predict/echo/batch", json={"items": [{"x": 1}, {"x": "a"}, {"x": 2.5}]})
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batch_id"]
    pending = app_client.get(f"/api/predict/batch/{batch_id}/results").json()
    assert pending["status"] == "pending" and pending["model"] == "echo" and pending["results"] is None
    assert run_batch(app_resources, batch_id)["status"] == "partial"
    body = app_client.get(f"/api/predict/batch/{batch_id}/results").json()
    assert body["results"] == [
        {"index": 0, "doubled": 2, "model_version": "echo-1", "cached": False},
        {"index": 2, "doubled": 5.0, "model_version": "echo-1", "cached": False},
    ]
    assert body["errors"] == [{"index": 1, "message": "invalid input in 1 field: x",
                               "details": [{"field": "x", "message": "must be a number"}]}]  # fmt: skip


def test_a_batch_for_an_unknown_model_is_404(app_client: TestClient) -> None:
    response = app_client.post("/api/predict/nope/batch", json={"items": [{"x": 1}]})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no model named 'nope'; available: congestion, echo, eclo"


def test_the_registry_is_injected(app_client: TestClient, tmp_path: Path) -> None:
    empty = ModelRegistry(tmp_path / "no-models", MODEL_KINDS)
    overrides = app_client.app.dependency_overrides  # type: ignore[attr-defined]
    overrides[get_registry] = lambda: empty
    overrides[get_predictions] = lambda: Predictions(empty, {})
    assert app_client.get("/api/models").json() == {"models": []}
    refused = app_client.post("/api/predict/eclo/batch", json={"items": [{"x": 1}]})
    assert refused.status_code == 404 and refused.json()["error"]["details"] == [{"available": []}]
    ready = app_client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "dependency_unavailable"


def test_ids_the_api_never_issued_are_404_and_reach_no_other_key(app_client: TestClient, csv_rows: list[dict]) -> None:
    batch_id = app_client.post("/api/predict/eclo/batch", json={"items": csv_rows[:2]}).json()["batch_id"]
    for suffix in (":out", ":items", "x" * 5000):
        response = app_client.get(f"/api/predict/batch/{batch_id}{suffix}/results")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert len(response.json()["error"]["message"]) < 200
    assert app_client.get(f"/api/predict/batch/{batch_id}/results").json()["status"] == "pending"


def test_the_batches_are_walked_by_cursor_newest_first_then_by_id(
    app_client: TestClient, app_resources: Resources
) -> None:
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    with app_resources.sessions() as session:
        for i in range(11):  # three a minute: ties in created_at, broken by id
            session.add(BatchJob(id=f"{(i * 4) % 11:032x}", model_name="echo", status=("success", "failure")[i % 2],
                                 total=1, created_at=start + timedelta(minutes=i // 3)))  # fmt: skip
        session.commit()
    order = sorted(range(11), key=lambda i: (-(i // 3), f"{(i * 4) % 11:032x}"))
    for status, size in ((None, 2), ("failure", 3)):
        params = {"size": size} if status is None else {"size": size, "status": status}
        pages = [app_client.get("/api/predict/batch", params=params).json()]
        while pages[-1]["next"] is not None:
            pages.append(app_client.get("/api/predict/batch", params={**params, "cursor": pages[-1]["next"]}).json())
        expected = [f"{(i * 4) % 11:032x}" for i in order if status is None or i % 2]
        assert [job["id"] for page in pages for job in page["items"]] == expected
        assert {(page["total"], page["total_exact"]) for page in pages} == {(len(expected), True)}
    records_cursor = Position.of("records", page=1, size=1, cursor=None, tie=int).cursor_after((start, 7))
    refused = app_client.get("/api/predict/batch", params={"cursor": records_cursor})
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "cursor"
