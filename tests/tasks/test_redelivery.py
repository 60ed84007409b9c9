"""A task whose Redis or file store goes away mid-work gives its message back instead of failing it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from botocore.exceptions import EndpointConnectionError
from celery.exceptions import Reject
from fastapi.testclient import TestClient

from backend.core.config import Settings
from backend.tasks import batches as batches_task
from backend.tasks.batches import BatchTask, score_batch
from backend.tasks.datasets import run_chunk, score_chunk
from backend.wiring import Resources
from tests.fixtures.datasets import dacon_file, upload


class Unreachable:
    """Resources whose every store raises `error` when asked for anything."""

    def __init__(self, settings: Settings, error: Exception) -> None:
        self.settings, self.error = settings, error

    def __getattr__(self, name: str) -> Any:
        def refuse(*_: Any, **__: Any) -> Any:
            raise self.error

        return SimpleNamespace(get=refuse)


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches_task, "GIVE_BACK_PAUSE_SECONDS", 0.0)


@pytest.fixture
def cut_off(app_settings: Settings, request: pytest.FixtureRequest) -> Iterator[None]:
    previous = BatchTask.resources
    BatchTask.resources = Unreachable(app_settings, request.param)  # type: ignore[assignment]
    try:
        yield
    finally:
        BatchTask.resources = previous


@pytest.mark.unit
@pytest.mark.parametrize(
    "cut_off",
    [redis.ConnectionError("Error 113 connecting: No route to host"), redis.TimeoutError("Timeout reading")],
    indirect=True,
)
def test_a_batch_whose_redis_went_away_is_given_back_for_another_delivery(cut_off: None) -> None:
    with pytest.raises(Reject) as given_back:
        score_batch.run("b" * 32)
    assert given_back.value.requeue is True


@pytest.mark.unit
@pytest.mark.parametrize(
    "cut_off",
    [redis.ConnectionError("Error 113"), EndpointConnectionError(endpoint_url="http://10.0.0.2:9000/drill")],
    indirect=True,
)
def test_a_dataset_chunk_whose_redis_or_file_store_went_away_is_given_back(cut_off: None) -> None:
    with pytest.raises(Reject) as given_back:
        score_chunk.run("j" * 32, 3)
    assert given_back.value.requeue is True


@pytest.mark.unit
@pytest.mark.parametrize("cut_off", [ValueError("a bug")], indirect=True)
def test_other_errors_are_not_given_back(cut_off: None) -> None:
    with pytest.raises(ValueError):
        score_chunk.run("j" * 32, 3)


@pytest.mark.app
def test_a_chunk_whose_store_fails_mid_chunk_leaves_the_job_running_and_is_scored_on_the_next_delivery(
    app_client: TestClient, app_resources: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_id = upload(app_client, dacon_file(tmp_path, 300, seed=9)).json()["id"]
    job = app_client.post(f"/api/datasets/{dataset_id}/predict", params={"chunk_rows": 100}).json()
    storage = app_resources.dataset_files.storage
    with monkeypatch.context() as cut:

        def unreachable(*_: Any, **__: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="http://10.0.0.2:9000/drill")

        cut.setattr(storage, "put_if_absent", unreachable)
        cut.setattr(BatchTask, "resources", app_resources)
        with pytest.raises(Reject) as given_back:
            score_chunk.run(job["job_id"], 0)
    assert given_back.value.requeue is True
    assert app_client.get(f"/api/datasets/{dataset_id}/predictions").json()["status"] == "processing"
    for chunk in range(job["chunks"]):
        run_chunk(app_resources, job["job_id"], chunk)
    status = app_client.get(f"/api/datasets/{dataset_id}/predictions").json()
    assert status["status"] == "success" and status["progress"]["done"] == status["progress"]["total"]
