"""JSON logs: one object per line, and a batch can be followed from the request to the worker by its id."""

from __future__ import annotations

import json

import httpx

from backend.dev.processes import wait_until
from tests.fixtures.batches import wait_for_batch
from tests.fixtures.stack import Stack


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_batch_is_followed_from_request_to_worker(api: httpx.Client, stack: Stack, csv_rows: list[dict]) -> None:
    request_id = "trace-batch-0042"
    response = api.post("/api/predict/eclo/batch", json={"items": csv_rows[:3]}, headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    batch_id = response.json()["batch_id"]
    wait_for_batch(api, batch_id)

    def worker_logged() -> bool:
        lines = _json_lines((stack.logs / "worker.log").read_text(errors="replace"))
        return any(line.get("request_id") == request_id and batch_id in line["message"] for line in lines)

    assert wait_until(worker_logged, timeout=10)
    api_log = next(stack.logs.glob("api-*.log")).read_text(errors="replace")
    mine = [line for line in _json_lines(api_log) if line.get("request_id") == request_id]
    assert {"ts", "level", "logger", "message"} <= set(mine[0])
    assert any(batch_id in line["message"] and line["logger"] == "backend.services.batches" for line in mine)


def test_failed_requests_are_logged_with_their_id(api: httpx.Client, stack: Stack) -> None:
    response = api.post("/api/predict/eclo", json={"weather": "?"}, headers={"X-Request-ID": "trace-bad-0007"})
    assert response.status_code == 422

    def logged() -> bool:
        lines = _json_lines(next(stack.logs.glob("api-*.log")).read_text(errors="replace"))
        return any(
            line.get("request_id") == "trace-bad-0007" and line.get("status") == 422
            and line.get("route") == "/api/predict/{model}" and line.get("duration_ms", -1) >= 0
            for line in lines
        )  # fmt: skip

    assert wait_until(logged, timeout=5)
