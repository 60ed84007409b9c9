"""Polling helpers shared by the API and task tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

FINAL = {"success", "partial", "failure"}


def wait_for_batch(api: httpx.Client, batch_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = api.get(f"/api/predict/batch/{batch_id}/results").json()
        if body.get("status") in FINAL:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} not finished after {timeout} s: {body}")
        time.sleep(0.05)


def submit(api: httpx.Client, rows: list[Any]) -> dict[str, Any]:
    response = api.post("/api/predict/eclo/batch", json={"items": rows})
    assert response.status_code == 202, response.text
    return response.json()
