"""The process helpers `make run` and the tests share: an embedded Redis, throwaway or persistent."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from backend.dev.processes import free_port, start_redis, stop

pytestmark = pytest.mark.stack


def _restarted_keeps(tmp_path: Path, persist: bool) -> bool:
    port = free_port()
    server = start_redis(port, tmp_path, persist=persist)
    try:
        redis.Redis(port=port).set("queued", "batch")
    finally:
        stop(server)  # SIGTERM: the append-only file is flushed on the way out
    server = start_redis(port, tmp_path, persist=persist)
    try:
        return redis.Redis(port=port).get("queued") == b"batch"
    finally:
        stop(server)


def test_the_persistent_redis_of_make_run_keeps_its_data_over_a_restart(tmp_path: Path) -> None:
    assert _restarted_keeps(tmp_path / "persistent", persist=True)


def test_the_tests_redis_keeps_nothing(tmp_path: Path) -> None:
    assert not _restarted_keeps(tmp_path / "throwaway", persist=False)
