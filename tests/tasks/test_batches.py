"""The one batch pipeline: its Redis record unit by unit, and the task run directly (no Celery) on a real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from backend.core.config import Settings
from backend.db.migrate import upgrade
from backend.ml.congestion.loaders import read_speeds
from backend.stores.batches import BatchStore
from backend.tasks.batches import run_batch
from backend.wiring import Resources, open_resources
from tests.fixtures.batches import submit, wait_for_batch
from tests.fixtures.stack import Stack, stack_env


@pytest.fixture
def store(redis_url: str) -> Iterator[BatchStore]:
    client = redis.Redis.from_url(redis_url)
    prefix = f"store-test-{uuid.uuid4().hex[:8]}:"
    yield BatchStore(client, prefix, ttl_seconds=60, stale_after_seconds=30)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def test_create_counts_and_refuses_beyond_the_limit(store: BatchStore) -> None:
    assert store.create("a", [{"x": 1}], "eclo", "r1", max_pending=2) == 1
    assert store.create("b", [{"x": 2}], "eclo", "r2", max_pending=2) == 2
    assert store.create("c", [{"x": 3}], "eclo", "r3", max_pending=2) is None
    assert store.get("c") is None and store.client.zcard(f"{store.prefix}batches:active") == 2
    store.finish("a", "success")
    assert store.create("c", [{"x": 3}], "eclo", "r3", max_pending=2) == 2


def test_stale_active_entries_do_not_block_the_queue(store: BatchStore) -> None:
    store.create("old", [], "eclo", "r", max_pending=1)
    store.client.zadd(f"{store.prefix}batches:active", {"old": time.time() - 3600})
    assert store.create("new", [], "eclo", "r", max_pending=1) == 1


def test_an_answer_given_is_never_replaced(store: BatchStore) -> None:
    store.create("b", [{"x": 1}, {"x": 2}], "eclo", "r", max_pending=10)
    store.save_outcomes("b", {0: {"eclo": 3.0}})
    store.save_outcomes("b", {0: {"eclo": 99.0}, 1: {"error": "bad"}})
    assert store.outcomes("b") == {0: {"eclo": 3.0}, 1: {"error": "bad"}}
    assert store.done_indices("b") == {0, 1}


def test_record_lifecycle_and_statistics(store: BatchStore) -> None:
    store.create("b", [{"x": 1}], "eclo", "req-9", max_pending=10)
    record = store.get("b")
    assert record is not None and (record.status, record.total, record.request_id) == ("pending", 1, "req-9")
    assert store.start_delivery("b") == 1 and store.start_delivery("b") == 2
    processing = store.get("b")
    assert processing is not None and processing.status == "processing" and processing.started_at is not None
    store.finish("b", "partial", "1 row invalid")
    done = store.get("b")
    assert done is not None and done.is_final and done.error == "1 row invalid" and done.deliveries == 2
    assert store.batch_stats() == ({"partial": 1}, 0)
    assert 0 < store.client.ttl(f"{store.prefix}batch:b") <= 60


# The task's body run directly on the in-process app's resources (a real Redis, no Celery).


def test_a_redelivered_batch_keeps_the_rows_already_answered(app_resources: Resources) -> None:
    store = app_resources.batches
    store.create("again", [{"x": 1}, {"x": 2}], "echo", "r", max_pending=10)
    store.save_outcomes("again", {0: {"doubled": -1, "model_version": "earlier"}})  # a first delivery's answer
    assert run_batch(app_resources, "again") == {"batch_id": "again", "status": "success", "done": 2, "total": 2}
    assert store.outcomes("again") == {
        0: {"doubled": -1, "model_version": "earlier"},
        1: {"doubled": 4, "model_version": "echo-1", "cached": False},
    }


def test_deliveries_beyond_the_cap_fail_the_batch(app_resources: Resources) -> None:
    app_resources.batches.create("capped", [{"x": 1}], "echo", "r", max_pending=10)
    for _ in range(app_resources.settings.batch_max_deliveries):
        app_resources.batches.start_delivery("capped")
    assert run_batch(app_resources, "capped")["status"] == "failure"
    record = app_resources.batches.get("capped")
    assert record is not None and record.error == "gave up after 3 deliveries"


def test_a_failing_model_fails_its_batch_with_the_reason(app_resources: Resources) -> None:
    app_resources.batches.create("boom", [{"x": "boom"}], "echo", "r", max_pending=10)
    with pytest.raises(RuntimeError):
        run_batch(app_resources, "boom")
    record = app_resources.batches.get("boom")
    assert record is not None and record.status == "failure"
    assert record.error == "RuntimeError: the echo model failed on purpose"


def test_an_unknown_batch_is_dropped(app_resources: Resources) -> None:
    assert run_batch(app_resources, "never-submitted") == {"batch_id": "never-submitted", "status": "missing"}


# Through a real Celery worker process: the second kind is loaded by the worker from MODEL_PLUGINS.


@pytest.mark.stack
def test_a_second_kind_runs_through_the_real_worker(redis_url: str, two_kinds_model_root: Path, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'kinds.db'}"
    upgrade(database_url)
    stack = Stack(tmp_path / "logs", stack_env(redis_url, two_kinds_model_root, database_url))
    try:
        with httpx.Client(base_url=stack.start_api(), timeout=10) as api:
            stack.start_worker()
            mixed = wait_for_batch(api, submit(api, [{"x": 21}, {"y": 1}], model="echo")["batch_id"])
            assert mixed["status"] == "partial" and mixed["model"] == "echo"
            assert mixed["results"] == [{"index": 0, "doubled": 42, "model_version": "echo-1", "cached": False}]
            assert [e["index"] for e in mixed["errors"]] == [1]
            failed = wait_for_batch(api, submit(api, [{"x": "boom"}], model="echo")["batch_id"])
            assert failed["status"] == "failure" and "failed on purpose" in failed["error"]
            # Once Redis has forgotten it, the batch is served from the database, the model's output intact.
            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(f"{stack.env['KEY_PREFIX']}batch:{mixed['batch_id']}*"):
                client.delete(key)
            assert api.get(f"/api/predict/batch/{mixed['batch_id']}/results").json()["results"] == mixed["results"]
    finally:
        stack.stop_all()


def test_a_congestion_batch_runs_through_the_same_task(
    redis_url: str, congestion_model_dir: Path, small_network: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "congestion").symlink_to(congestion_model_dir, target_is_directory=True)
    database_url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(database_url)
    settings = Settings(redis_url=redis_url, database_url=database_url, model_dir=tmp_path / "models",
                        key_prefix=f"cong-{uuid.uuid4().hex[:8]}:")  # fmt: skip
    resources = open_resources(settings)
    try:
        model = resources.registry.get("congestion")
        speeds = read_speeds(small_network["speeds"])
        sensor = speeds.columns[0]
        column = speeds[sensor]
        readings = [
            {"timestamp": speeds.index[i].isoformat(), "speed_mph": float(column.iloc[i])} for i in range(300, 312)
        ]
        good = {"sensor_id": sensor, "readings": readings}
        resources.batches.create("c1", [good, {"sensor_id": "nope", "readings": []}], "congestion", "r", 10)
        assert run_batch(resources, "c1")["status"] == "partial"
        outcomes = resources.batches.outcomes("c1")
        assert outcomes[0] == {**model.predict_one(good).to_dict(), "cached": False}
        assert [f["horizon_minutes"] for f in outcomes[0]["forecasts"]] == [15, 30, 60]
        assert {d["field"] for d in outcomes[1]["details"]} == {"sensor_id", "readings"}
    finally:
        resources.close()
