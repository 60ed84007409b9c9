"""A task whose Redis or file store goes away mid-work gives its message back instead of failing it."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from botocore.exceptions import EndpointConnectionError
from celery.exceptions import Reject

from backend.core.config import Settings
from backend.tasks.batches import BatchTask, score_batch
from backend.tasks.datasets import score_chunk

pytestmark = pytest.mark.unit


class Unreachable:
    """Resources whose every store raises `error` when asked for anything."""

    def __init__(self, settings: Settings, error: Exception) -> None:
        self.settings, self.error = settings, error

    def __getattr__(self, name: str) -> Any:
        def refuse(*_: Any, **__: Any) -> Any:
            raise self.error

        return SimpleNamespace(get=refuse)


@pytest.fixture
def cut_off(app_settings: Settings, request: pytest.FixtureRequest) -> Iterator[None]:
    previous = BatchTask.resources
    BatchTask.resources = Unreachable(app_settings, request.param)  # type: ignore[assignment]
    try:
        yield
    finally:
        BatchTask.resources = previous


@pytest.mark.parametrize(
    "cut_off",
    [redis.ConnectionError("Error 113 connecting: No route to host"), redis.TimeoutError("Timeout reading")],
    indirect=True,
)
def test_a_batch_whose_redis_went_away_is_given_back_for_another_delivery(cut_off: None) -> None:
    with pytest.raises(Reject) as given_back:
        score_batch.run("b" * 32)
    assert given_back.value.requeue is True


@pytest.mark.parametrize(
    "cut_off",
    [redis.ConnectionError("Error 113"), EndpointConnectionError(endpoint_url="http://10.0.0.2:9000/drill")],
    indirect=True,
)
def test_a_dataset_chunk_whose_redis_or_file_store_went_away_is_given_back(cut_off: None) -> None:
    with pytest.raises(Reject) as given_back:
        score_chunk.run("j" * 32, 3)
    assert given_back.value.requeue is True


@pytest.mark.parametrize("cut_off", [ValueError("a bug")], indirect=True)
def test_other_errors_are_not_given_back(cut_off: None) -> None:
    with pytest.raises(ValueError):
        score_chunk.run("j" * 32, 3)
