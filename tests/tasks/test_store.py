"""The batch records in a real Redis (the tests' own database), unit by unit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from backend.tasks.store import BatchStore


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
    assert store.get("c") is None and store.active_count() == 2
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
