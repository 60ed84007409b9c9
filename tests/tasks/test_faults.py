"""Fault drills on a stack with its own Redis server: killed workers, Redis down and back, a full queue."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

from backend.dev.processes import free_port, start_redis, stop, wait_until
from backend.ml.eclo.model import EcloModel
from tests.fixtures.batches import submit, wait_for_batch
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.drill

SLOW = {"BATCH_THROTTLE_SECONDS": "0.15", "BATCH_CHUNK_ROWS": "10"}  # 100 rows take about 1.5 s


def _progress(api: httpx.Client, batch_id: str) -> dict:
    return api.get(f"/api/predict/batch/{batch_id}/results").json()


def _kill_mid_batch(own_stack: Stack, api: httpx.Client, rows: list[dict]) -> str:
    worker = own_stack.start_worker("worker-a", **SLOW)
    batch_id = submit(api, rows)["batch_id"]
    assert wait_until(lambda: _progress(api, batch_id)["progress"]["done"] >= 20, timeout=20)
    own_stack.kill(worker)
    state = _progress(api, batch_id)
    assert state["status"] == "processing" and state["progress"]["done"] < 100
    return batch_id


def test_worker_killed_mid_batch_completes_on_a_new_worker(
    own_stack: Stack, csv_rows: list[dict], small_model: EcloModel
) -> None:
    rows = csv_rows[:100]
    with httpx.Client(base_url=own_stack.start_api(), timeout=10) as api:
        batch_id = _kill_mid_batch(own_stack, api, rows)
        own_stack.start_worker("worker-b", **SLOW)
        body = wait_for_batch(api, batch_id, timeout=60)
    assert body["status"] == "success" and body["progress"] == {"done": 100, "total": 100}
    assert [r["index"] for r in body["results"]] == list(range(100))
    assert [r["eclo"] for r in body["results"]] == [small_model.predict_one(r).eclo for r in rows]
    client = redis.Redis.from_url(own_stack.env["REDIS_URL"])
    assert client.hget(f"{own_stack.env['KEY_PREFIX']}batch:{batch_id}", "deliveries") == b"2"


def test_redeliveries_are_capped(own_stack: Stack, csv_rows: list[dict]) -> None:
    own_stack.env["BATCH_MAX_DELIVERIES"] = "1"
    with httpx.Client(base_url=own_stack.start_api(), timeout=10) as api:
        batch_id = _kill_mid_batch(own_stack, api, csv_rows[:100])
        own_stack.start_worker("worker-b", **SLOW)
        body = wait_for_batch(api, batch_id, timeout=60)
    assert body["status"] == "failure" and body["error"] == "gave up after 1 deliveries"


def test_redis_down_then_back(own_stack: Stack, classic_row: dict, csv_rows: list[dict]) -> None:
    port = int(own_stack.env["TEST_REDIS_PORT"])
    with httpx.Client(base_url=own_stack.start_api(), timeout=15) as api:
        own_stack.start_worker()
        assert wait_for_batch(api, submit(api, csv_rows[:10])["batch_id"])["status"] == "success"
        # Let the worker acknowledge that task first: Celery 5.7's worker can die ("Unrecoverable error") when
        # the broker drops in the middle of an acknowledgement; `make run` and compose restart it then.
        assert wait_until(lambda: redis.Redis(port=port).hlen("unacked") == 0, timeout=10)
        time.sleep(0.5)

        redis.Redis(port=port).shutdown(nosave=True)
        assert wait_until(lambda: not _answers(port), timeout=10)
        for hour in (1, 2, 3):
            single = api.post("/api/predict/eclo", json={**classic_row, "accident_hour": hour})
            assert single.status_code == 200 and single.json()["cached"] is False
        refused = api.post("/api/predict/eclo/batch", json={"items": csv_rows[:10]})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "dependency_unavailable"
        assert "redis" in refused.json()["error"]["message"]
        health = api.get("/health")
        assert health.status_code == 503 and health.json()["components"]["redis"]["status"] == "down"
        error = health.json()["error"]  # the envelope, naming what is down
        assert error["code"] == "dependency_unavailable" and "redis" in error["message"]

        restarted = start_redis(port, own_stack.logs / "redis-again")
        try:
            accepted = api.post("/api/predict/eclo/batch", json={"items": csv_rows[:10]})
            assert accepted.status_code == 202, accepted.text
            assert wait_for_batch(api, accepted.json()["batch_id"], timeout=60)["status"] == "success"
        finally:
            stop(restarted)


def test_full_queue_answers_429_with_retry_after(own_stack: Stack, csv_rows: list[dict]) -> None:
    with httpx.Client(base_url=own_stack.start_api(MAX_PENDING_BATCHES="2"), timeout=10) as api:
        for _ in range(2):
            submit(api, csv_rows[:5])  # no worker runs: both stay pending
        refused = api.post("/api/predict/eclo/batch", json={"items": csv_rows[:5]})
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "queue_full"
        own_stack.start_worker()
        assert wait_until(
            lambda: api.post("/api/predict/eclo/batch", json={"items": csv_rows[:5]}).status_code == 202, timeout=30
        )


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.2).ping())
    except redis.RedisError:
        return False


def test_database_unreachable_predictions_still_answer(
    own_stack: Stack, classic_row: dict, csv_rows: list[dict]
) -> None:
    own_stack.env["DATABASE_URL"] = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere"
    with httpx.Client(base_url=own_stack.start_api(), timeout=15) as api:
        own_stack.start_worker()
        for hour in range(5):
            response = api.post("/api/predict/eclo", json={**classic_row, "accident_hour": hour})
            assert response.status_code == 200
        assert wait_for_batch(api, submit(api, csv_rows[:10])["batch_id"])["status"] == "success"

        def database_failure_reported() -> bool:
            health = api.get("/health")
            database = health.json()["components"]["database"]
            return health.status_code == 503 and database["status"] == "down" and "failed 0," not in database["detail"]

        assert wait_until(database_failure_reported, timeout=15)
        listing = api.get("/api/predictions")
        assert listing.status_code == 503 and listing.json()["error"]["code"] == "dependency_unavailable"
