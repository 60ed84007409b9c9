"""The request middleware's body limit: a body over REQUEST_MAX_BYTES is refused in the envelope before it is
read whole, announced or streamed; uploads keep their own limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.core.config import Settings
from backend.main import create_app
from tests.fixtures.datasets import dacon_file, upload

LIMIT = 20_000


@pytest.fixture
def small_limit_client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings.model_copy(update={"request_max_bytes": LIMIT}))) as client:
        yield client


@pytest.mark.parametrize("path", ["/api/predict/eclo", "/api/predict/eclo/batch", "/api/traffic/readings"])
def test_an_announced_body_over_the_limit_is_refused(small_limit_client: TestClient, path: str) -> None:
    body = json.dumps({"items": ["x" * LIMIT]})
    response = small_limit_client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.headers["x-request-id"]
    error = response.json()["error"]
    assert error["code"] == "too_large" and error["details"] == [{"field": "body"}]
    assert f"at most {LIMIT:,}" in error["message"]


def test_a_streamed_body_is_cut_at_the_limit(small_limit_client: TestClient) -> None:
    def body() -> Iterator[bytes]:  # chunked: no Content-Length
        yield b'{"items": ["'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"]}'

    response = small_limit_client.post(
        "/api/predict/eclo/batch", content=body(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and f"exceeds {LIMIT:,} bytes" in response.json()["error"]["message"]


def test_bodies_under_the_limit_and_uploads_pass(
    small_limit_client: TestClient, classic_row: dict, tmp_path: Path
) -> None:
    assert small_limit_client.post("/api/predict/eclo", json=classic_row).status_code == 200
    raw = dacon_file(tmp_path, 300)
    assert len(raw) > LIMIT
    assert upload(small_limit_client, raw).status_code == 201
