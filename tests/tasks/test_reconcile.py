"""Reconciliation: stuck batches re-queued, then failed past the delivery cap; work Redis lost failed with why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from backend.core.config import get_settings
from backend.db.models import BatchJob, DatasetJob
from backend.tasks.reconcile import LOST, main, reconcile, stuck_after_seconds
from backend.wiring import Resources
from tests.fixtures.datasets import upload


def test_a_batch_whose_message_was_lost_is_requeued_then_failed(
    app_client: TestClient, app_resources: Resources, csv_rows: list[dict]
) -> None:
    batch_id = app_client.post("/api/predict/eclo/batch", json={"items": csv_rows[:3]}).json()["batch_id"]
    created = app_resources.batches.get(batch_id).created_at  # type: ignore[union-attr]
    stuck_after = stuck_after_seconds(app_resources)
    assert batch_id not in reconcile(app_resources, now=created + stuck_after - 1)["requeued"]  # may still come
    assert batch_id in reconcile(app_resources, now=created + stuck_after + 1)["requeued"]
    assert batch_id not in reconcile(app_resources, now=created + stuck_after + 2)["requeued"]  # just re-sent
    app_resources.redis.hset(f"{app_resources.settings.key_prefix}batch:{batch_id}", "deliveries", 3)
    assert batch_id in reconcile(app_resources, now=created + 3 * stuck_after)["failed"]
    body = app_client.get(f"/api/predict/batch/{batch_id}/results").json()
    assert body["status"] == "failure" and body["error"] == "stuck: no delivery finished after 3"


def test_work_only_the_database_remembers_is_failed_saying_why(
    app_client: TestClient, app_resources: Resources, classic_row: dict
) -> None:
    text = ",".join(classic_row) + "\n" + ",".join(str(v) for v in classic_row.values()) + "\n"
    dataset_id = upload(app_client, text.encode()).json()["id"]
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    recent = datetime.now(UTC)
    with app_resources.sessions() as session:
        session.add_all([
            BatchJob(id="a" * 32, model_name="eclo", status="processing", total=5, created_at=long_ago),
            BatchJob(id="b" * 32, model_name="eclo", status="pending", total=5, created_at=recent),
            DatasetJob(id="c" * 32, dataset_id=dataset_id, model_name="eclo", status="processing", total=1,
                       chunk_rows=1000, created_at=long_ago),
        ])  # fmt: skip
        session.commit()
    done = reconcile(app_resources)
    assert sorted(done["lost"]) == ["a" * 32, "c" * 32]  # the recent one may still be on its way
    lost = app_client.get(f"/api/predict/batch/{'a' * 32}/results").json()
    assert lost["status"] == "failure" and lost["error"] == LOST
    with app_resources.sessions() as session:
        assert session.get(DatasetJob, "c" * 32).status == "failure"  # type: ignore[union-attr]
        assert session.get(BatchJob, "b" * 32).status == "pending"  # type: ignore[union-attr]


def test_the_beat_health_check_sees_the_last_pass(app_resources: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = app_resources.settings
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("KEY_PREFIX", settings.key_prefix)
    get_settings.cache_clear()
    try:
        assert main(["--check"]) == 1
        reconcile(app_resources)
        assert main(["--check"]) == 0
    finally:
        get_settings.cache_clear()


def test_a_training_job_whose_process_stopped_beating_is_failed(app_resources: Resources) -> None:
    from backend.db.lifecycle import get_training_job, insert_training_job

    versions = app_resources.registry.versions
    assert versions is not None
    beaten = datetime.now(UTC) - timedelta(seconds=app_resources.settings.training_stale_seconds)
    with app_resources.sessions() as session:
        for job_id, heartbeat in (
            ("a" * 32, beaten - timedelta(seconds=5)),
            ("b" * 32, beaten + timedelta(seconds=30)),
        ):
            insert_training_job(session, id=job_id, model_name="eclo", kind="eclo", status="running",
                                request={}, heartbeat_at=heartbeat)  # fmt: skip
        session.commit()
    stopped = versions.partial_folder("eclo", "a" * 32)
    alive = versions.partial_folder("eclo", "b" * 32)
    assert reconcile(app_resources)["training_failed"] == ["a" * 32]
    with app_resources.sessions() as session:
        failed, running = get_training_job(session, job_id="a" * 32), get_training_job(session, job_id="b" * 32)
        assert failed is not None and failed.status == "failure" and "worker was killed" in (failed.error or "")
        assert running is not None and running.status == "running"
    assert not stopped.exists() and alive.exists()
    versions.discard(alive)  # outside tmp_path with an object store (TEST_STORAGE=s3): the host's training folder
