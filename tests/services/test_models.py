"""Promotion and rollback across real processes: two uvicorn APIs and a prefork worker follow the alias table
within MODEL_RELOAD_SECONDS; a batch submitted before a promotion finishes on the version it started with."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.dev.processes import wait_until
from backend.ml.eclo.datagen import write_dacon_csv
from tests.fixtures.batches import submit, wait_for_batch
from tests.fixtures.datasets import upload
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.drill

RELOAD = {"MODEL_RELOAD_SECONDS": "1", "SHADOW_SAMPLE_RATE": "1"}
SLOW = {"BATCH_THROTTLE_SECONDS": "0.2", "BATCH_CHUNK_ROWS": "10", "BATCH_TIME_LIMIT_SECONDS": "30",
        "BATCH_SOFT_TIME_LIMIT_SECONDS": "25", "CELERY_VISIBILITY_TIMEOUT_SECONDS": "60"}  # fmt: skip


def wait_for_training(api: httpx.Client, poll_url: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(poll_url).json()
        if job["status"] in ("success", "failure", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"training not final after {timeout} s: {job}")


def train_on_worker(api: httpx.Client, folder: Path, rows: int = 3000) -> dict[str, Any]:
    path = write_dacon_csv(folder / "later-years.csv", rows, 21)
    dataset = upload(api, path.read_bytes(), filename=path.name, kind="eclo").json()
    accepted = api.post("/api/models/eclo/versions", json={"dataset_ids": [dataset["id"]], "holdout_from_year": 2021})
    assert accepted.status_code == 202, accepted.text
    return wait_for_training(api, accepted.json()["poll_url"])


def served_versions(apis: list[httpx.Client], row: dict) -> set[str]:
    return {api.post("/api/predict/eclo", json=row).json()["model_version"] for api in apis}


def test_promote_and_roll_back_reach_every_process(
    own_stack: Stack, tmp_path: Path, classic_row: dict, csv_rows: list[dict]
) -> None:
    own_stack.env.update(RELOAD)
    own_stack.env.update(SLOW)
    urls = [own_stack.start_api(), own_stack.start_api()]
    own_stack.start_worker()
    with httpx.Client(base_url=urls[0], timeout=10) as first, httpx.Client(base_url=urls[1], timeout=10) as second:
        apis = [first, second]
        job = train_on_worker(first, tmp_path)
        assert job["status"] == "success", job
        old, new = first.get("/api/models/eclo").json()["version"], job["version"]
        assert served_versions(apis, classic_row) == {old}

        before = submit(first, csv_rows[:100])["batch_id"]  # 100 rows at 0.2 s a chunk of 10: about 2 s
        promoted = time.monotonic()
        assert first.put("/api/models/eclo/aliases/champion", json={"version": new}).status_code == 200
        assert wait_until(lambda: served_versions(apis, classic_row) == {new}, timeout=5)
        took = time.monotonic() - promoted
        assert took <= 1 + 2, f"every API served the new champion after {took:.1f} s"  # reload 1 s, and a margin
        after = submit(second, csv_rows[:10])["batch_id"]
        started_before = wait_for_batch(first, before, timeout=60)
        assert {r["model_version"] for r in started_before["results"]} == {old}
        assert {r["model_version"] for r in wait_for_batch(first, after, timeout=60)["results"]} == {new}

        assert second.post("/api/models/eclo/rollback").json()["version"] == old
        assert wait_until(lambda: served_versions(apis, classic_row) == {old}, timeout=5)
        assert {r["model_version"] for r in wait_for_batch(first, submit(first, csv_rows[:10])["batch_id"],
                                                           timeout=60)["results"]} == {old}  # fmt: skip
        # The new version as challenger: the single predictions of both APIs scored in its shadow by the worker.
        assert first.put("/api/models/eclo/aliases/challenger", json={"version": new}).status_code == 200
        assert wait_until(lambda: all(a.get("/health").status_code == 200 for a in apis), timeout=10)
        time.sleep(1.5)  # MODEL_RELOAD_SECONDS: both APIs know the challenger
        answers = [apis[i % 2].post("/api/predict/eclo", json=row).json() for i, row in enumerate(csv_rows[:30])]
        computed = sum(not a["cached"] for a in answers)
        assert wait_until(lambda: first.get("/api/models/eclo/shadow").json()["count"] == computed, timeout=15)
        summary = first.get("/api/models/eclo/shadow").json()
        assert summary["champion"] == old and summary["challenger"] == new and summary["largest_difference"] > 0
        moves = first.get("/api/models/eclo/aliases/history").json()["moves"]
        assert [(m["alias"], m["from_version"], m["to_version"]) for m in moves] == [
            ("challenger", None, new), ("champion", new, old), ("champion", None, new)]  # fmt: skip
