"""Records in the database, through the real stack: single predictions, batch rows, pagination."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from backend.core.config import Settings
from backend.db.records import insert_predictions
from backend.dev.processes import free_port, wait_until
from backend.main import create_app
from backend.ml.eclo.model import EcloModel
from backend.schemas import pages
from backend.schemas.pages import Position
from backend.wiring import Resources
from tests.fixtures.batches import submit, wait_for_batch
from tests.fixtures.stack import Stack


def _recorded(api: httpx.Client, request_ids: set[str]) -> list[dict]:
    items = api.get("/api/predictions", params={"size": 200}).json()["items"]
    return [item for item in items if item["request_id"] in request_ids]


def test_every_single_prediction_is_recorded(api: httpx.Client, csv_rows: list[dict], small_model: EcloModel) -> None:
    ids = {f"hist-{uuid.uuid4().hex[:8]}-{i}" for i in range(12)}
    for request_id, row in zip(sorted(ids), csv_rows[100:112], strict=True):
        assert api.post("/api/predict/eclo", json=row, headers={"X-Request-ID": request_id}).status_code == 200
    assert wait_until(lambda: len(_recorded(api, ids)) == 12, timeout=10)
    records = _recorded(api, ids)
    assert {r["model_version"] for r in records} == {small_model.version}
    assert {r["model_name"] for r in records} == {"eclo"}
    assert all(r["created_at"].endswith("Z") for r in records)
    by_id = {r["request_id"]: r for r in records}
    first = by_id[sorted(ids)[0]]
    assert first["inputs"] == csv_rows[100] and first["eclo"] == small_model.predict_one(csv_rows[100]).eclo


def test_the_records_export_as_csv_oldest_first_with_the_listings_filters(
    api: httpx.Client, csv_rows: list[dict]
) -> None:
    prefix = f"csv-{uuid.uuid4().hex[:8]}"
    sent = {f"{prefix}-{i}": row for i, row in enumerate(csv_rows[200:205])}
    for request_id, row in sent.items():
        assert api.post("/api/predict/eclo", json=row, headers={"X-Request-ID": request_id}).status_code == 200
    assert wait_until(lambda: len(_recorded(api, set(sent))) == 5, timeout=10)
    until = datetime.now(UTC).isoformat()
    listed = api.get("/api/predictions", params={"model": "eclo", "until": until, "size": 1}).json()["total"]

    export = api.get("/api/predictions.csv", params={"model": "eclo", "until": until})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert 'filename="predictions.csv"' in export.headers["content-disposition"]
    assert export.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert len(rows) == listed and {r["model_name"] for r in rows} == {"eclo"}
    assert [r["created_at"] for r in rows] == sorted(r["created_at"] for r in rows)
    by_id = {r["request_id"]: r for r in rows if r["request_id"] in sent}
    assert list(by_id) == list(sent)  # in the order they were asked
    record = _recorded(api, {f"{prefix}-0"})[0]
    first = by_id[f"{prefix}-0"]
    assert json.loads(first["inputs"]) == sent[f"{prefix}-0"] and float(first["eclo"]) == record["eclo"]
    assert first["risk_level"] == record["risk_level"] and first["output"] == ""
    later = api.get("/api/predictions.csv", params={"since": until}).content.decode("utf-8-sig")
    assert not any(request_id in later for request_id in sent)
    bad = api.get("/api/predictions.csv", params={"until": "tomorrow", "key_id": "nope"})
    assert bad.status_code == 422 and {d["field"] for d in bad.json()["error"]["details"]} == {"until", "key_id"}


def test_pagination_totals(api: httpx.Client, classic_row: dict) -> None:
    for hour in range(5):
        api.post("/api/predict/eclo", json={**classic_row, "accident_hour": hour})

    def settled() -> bool:  # every record of this session's earlier requests has landed
        before = api.get("/api/predictions").json()["total"]
        time.sleep(0.3)
        return before >= 5 and api.get("/api/predictions").json()["total"] == before

    assert wait_until(settled, timeout=10)
    first = api.get("/api/predictions", params={"page": 1, "size": 2}).json()
    total = first["total"]
    assert first["size"] == 2 and first["pages"] == (total + 1) // 2 and len(first["items"]) == 2
    last = api.get("/api/predictions", params={"page": first["pages"], "size": 2}).json()
    assert len(last["items"]) == total - 2 * (first["pages"] - 1)
    assert api.get("/api/predictions", params={"model": "nope"}).json() == {
        "items": [], "total": 0, "total_exact": True, "page": 1, "size": 20, "pages": 0, "next": None,
    }  # fmt: skip
    bad = api.get("/api/predictions", params={"size": 0, "since": "yesterday"})
    assert bad.status_code == 422
    assert {d["field"] for d in bad.json()["error"]["details"]} == {"size", "since"}


def test_batch_rows_are_recorded_and_outlive_redis(api: httpx.Client, stack: Stack, csv_rows: list[dict]) -> None:
    rows = [dict(r) for r in csv_rows[:100]]
    rows[7]["weather"] = "폭풍"
    batch_id = submit(api, rows)["batch_id"]
    live = wait_for_batch(api, batch_id)
    assert live["status"] == "partial"

    def listed() -> bool:
        page = api.get("/api/predict/batch", params={"status": "partial", "size": 200}).json()
        return any(item["id"] == batch_id and item["done"] == 100 for item in page["items"])

    assert wait_until(listed, timeout=10)
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    prefix = stack.env["KEY_PREFIX"]
    assert client.delete(
        f"{prefix}batch:{batch_id}", f"{prefix}batch:{batch_id}:out", f"{prefix}batch:{batch_id}:items"
    )
    stored = api.get(f"/api/predict/batch/{batch_id}/results").json()
    assert stored["status"] == "partial" and stored["progress"] == {"done": 100, "total": 100}
    assert stored["results"] == live["results"]
    assert stored["created_at"].endswith("Z") and stored["finished_at"].endswith("Z")  # UTC on every database
    assert [(e["index"], e["message"]) for e in stored["errors"]] == [(7, live["errors"][0]["message"])]


def test_batch_list_filters_by_status(api: httpx.Client) -> None:
    response = api.get("/api/predict/batch", params={"status": "exploded"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "status"


@pytest.mark.parametrize("path", ["/api/predictions", "/api/predict/batch", "/api/datasets"])
def test_a_page_beyond_any_listing_is_refused_by_name(app_client: TestClient, path: str) -> None:
    response = app_client.get(path, params={"page": 10**20})
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "page"


def _stored_records(resources: Resources, count: int) -> None:
    """`count` records, two a second (ties in created_at), alternately of each model."""
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    rows = [{"created_at": start + timedelta(seconds=i // 2), "model_name": ("eclo", "congestion")[i // 2 % 2],
             "model_version": "v1", "inputs": {"i": i}, "latency_ms": 0.5, "request_id": f"r{i:02d}",
             "record_id": f"{i:032x}"} for i in range(count)]  # fmt: skip
    with resources.sessions() as session:
        insert_predictions(session, rows=rows)
        session.commit()


def _walk(client: TestClient, path: str, **params: Any) -> list[dict]:
    answers = [client.get(path, params=params).json()]
    while answers[-1]["next"] is not None:
        answers.append(client.get(path, params={**params, "cursor": answers[-1]["next"]}).json())
    return answers


def test_the_records_are_walked_by_cursor_each_once_with_the_filters(
    app_client: TestClient, app_resources: Resources
) -> None:
    _stored_records(app_resources, 23)
    pages = _walk(app_client, "/api/predictions", size=5)
    assert [r["request_id"] for p in pages for r in p["items"]] == [f"r{i:02d}" for i in range(22, -1, -1)]
    assert [p["page"] for p in pages] == [1, None, None, None, None] and pages[-1]["next"] is None
    assert {(p["total"], p["total_exact"], p["pages"]) for p in pages} == {(23, True, 5)}
    until = "2026-11-01T12:00:09Z"
    eclo = _walk(app_client, "/api/predictions", size=2, model="eclo", until=until)
    assert [r["request_id"] for p in eclo for r in p["items"]] == [
        f"r{i:02d}" for i in range(17, -1, -1) if i // 2 % 2 == 0
    ]  # fmt: skip
    assert {r["model_name"] for p in eclo for r in p["items"]} == {"eclo"} and eclo[0]["total"] == 10


def test_a_bad_cursor_or_a_deep_page_is_refused_by_name(app_client: TestClient, app_resources: Resources) -> None:
    _stored_records(app_resources, 3)
    batches_cursor = Position.of("batches", page=1, size=1, cursor=None, tie=str).cursor_after(
        (datetime(2026, 11, 1, tzinfo=UTC), "ab")
    )
    for cursor in ("not-a-cursor", batches_cursor, "x" * 201):
        refused = app_client.get("/api/predictions", params={"cursor": cursor})
        assert refused.status_code == 422, cursor
        assert [d["field"] for d in refused.json()["error"]["details"]] == ["cursor"]
    deep = app_client.get("/api/predictions", params={"page": 52, "size": 200})
    assert deep.status_code == 422 and deep.json()["error"]["details"][0]["field"] == "page"
    assert "cursor" in deep.json()["error"]["message"]
    assert app_client.get("/api/predictions", params={"page": 51, "size": 200}).status_code == 200  # 10,000 in
    answer = app_client.get("/api/predictions", params={"size": 1}).json()
    both = app_client.get("/api/predictions", params={"size": 1, "page": 2, "cursor": answer["next"]})
    assert both.status_code == 422 and both.json()["error"]["details"][0]["field"] == "page"


def test_a_total_beyond_the_count_limit_says_more_than(
    app_client: TestClient, app_resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stored_records(app_resources, 12)
    monkeypatch.setattr(pages, "COUNT_LIMIT", 10)
    answer = app_client.get("/api/predictions", params={"size": 4}).json()
    assert (answer["total"], answer["total_exact"], answer["pages"]) == (10, False, 3)
    assert app_client.get("/api/predictions", params={"model": "eclo"}).json()["total_exact"] is True
    walked = _walk(app_client, "/api/predictions", size=5)
    assert sum(len(p["items"]) for p in walked) == 12


def test_an_export_while_the_database_is_down_is_a_503_naming_it(app_settings: Settings) -> None:
    down = app_settings.model_copy(update={"database_url": f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/x"})
    with TestClient(create_app(down)) as client:
        answer = client.get("/api/predictions.csv")
    assert answer.status_code == 503 and answer.json()["error"]["details"][0]["dependency"] == "database"
    assert "127.0.0.1" not in answer.text
