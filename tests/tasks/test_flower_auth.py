"""Flower with --basic_auth asks for its password on every page, `/metrics` and `/healthcheck` included (a real
`celery flower` process)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from backend.dev.processes import PROJECT_ROOT, ProcessGroup, free_port, wait_until

pytestmark = pytest.mark.stack

AUTH = ("flower", "a-long-flower-password")


def test_every_flower_page_needs_the_password(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    group = ProcessGroup(tmp_path, {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(PROJECT_ROOT)})
    try:
        group.spawn("flower", [sys.executable, "-m", "celery", "-A", "backend.tasks", "flower", f"--port={port}",
                               f"--basic_auth={':'.join(AUTH)}"])  # fmt: skip
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/", auth=AUTH, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(up, timeout=60)
        for path in ("/", "/metrics", "/healthcheck", "/api/workers"):
            assert httpx.get(f"{url}{path}", timeout=10).status_code == 401, path
            assert httpx.get(f"{url}{path}", auth=("flower", "wrong"), timeout=10).status_code == 401, path
        assert httpx.get(f"{url}/metrics", auth=AUTH, timeout=10).status_code == 200
        assert httpx.get(f"{url}/healthcheck", auth=AUTH, timeout=10).status_code == 200
    finally:
        group.stop_all()
