"""A training job on a real worker: killed with its worker it fails cleanly and leaves no version."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from backend.core.config import Settings
from backend.dev.processes import wait_until
from backend.ml.eclo.datagen import write_dacon_csv
from tests.fixtures.datasets import upload
from tests.fixtures.object_store import stored_keys
from tests.fixtures.stack import Stack
from tests.services.test_models import wait_for_training

pytestmark = pytest.mark.drill

STORAGE_SETTINGS = ("STORAGE_URL", "S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")


def test_a_training_killed_with_its_worker_fails_and_leaves_no_version(own_stack: Stack, tmp_path: Path) -> None:
    own_stack.env["TRAINING_STALE_SECONDS"] = "3"
    api_url = own_stack.start_api()
    worker = own_stack.start_worker()
    with httpx.Client(base_url=api_url, timeout=10) as api:
        path = write_dacon_csv(tmp_path / "big.csv", 30_000, 4)
        dataset = upload(api, path.read_bytes(), filename=path.name, kind="eclo").json()
        poll = api.post("/api/models/eclo/versions", json={"dataset_ids": [dataset["id"]],
                                                           "holdout_from_year": 2021}).json()["poll_url"]  # fmt: skip
        assert wait_until(lambda: api.get(poll).json()["status"] == "running", timeout=60)
        assert wait_until(lambda: api.get(poll).json()["stage"] == "training", timeout=60)
        own_stack.kill(worker)
        killed = time.monotonic()
        job = wait_for_training(api, poll, timeout=30)
        assert job["status"] == "failure" and "its worker was killed" in job["error"] and job["version"] is None
        assert time.monotonic() - killed < 3 + 5
        assert len(api.get("/api/models/eclo/versions").json()["versions"]) == 1
    versions = Path(own_stack.env["DATA_DIR"]) / "models" / "eclo"
    assert not list(versions.glob(".partial-*")) and not [p for p in versions.glob("*") if p.is_dir()]
    storage = {name.lower(): own_stack.env[name] for name in STORAGE_SETTINGS if name in own_stack.env}
    assert stored_keys(Settings(data_dir=own_stack.env["DATA_DIR"], **storage), "models/eclo") == []
