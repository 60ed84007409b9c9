"""test_mvp.sh against a real stack of its own, and against nothing."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.stack import PROJECT_ROOT, stack_of_its_own

pytestmark = pytest.mark.stack

SCRIPT = str(PROJECT_ROOT / "test_mvp.sh")


@pytest.fixture(scope="module")
def smoke_api(
    redis_url: str,
    full_model_root: Path,
    network_sensors: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """An API and a worker with a database of their own: the script stores readings stamped now, which in the
    session's stack would become the network's newest under the traffic tests' feet."""
    with stack_of_its_own(tmp_path_factory.mktemp("smoke"), redis_url, full_model_root) as running:
        url = running.start_api()
        running.start_worker()
        registered = httpx.put(f"{url}/api/traffic/sensors", json={"sensors": network_sensors}, timeout=30)
        assert registered.status_code == 200, registered.text
        yield url


def test_smoke_test_passes_against_the_stack(smoke_api: str) -> None:
    result = subprocess.run([SCRIPT, smoke_api], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS") == 20 and "0 check(s) failed" in result.stdout
    record = next(line for line in result.stdout.splitlines() if line.startswith("PASS  prediction record"))
    assert re.search(r"model \w+ key \S+ eclo [\d.]+ \w+$", record), record


def test_exit_status_counts_the_failures() -> None:
    result = subprocess.run([SCRIPT, "http://127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 20 and result.stdout.count("FAIL") == 20


def test_help_documents_the_checks() -> None:
    result = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0 and "exit status is the number of failed checks" in result.stdout
