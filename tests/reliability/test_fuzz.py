"""Schemathesis against the OpenAPI document of a real API and worker of their own (it registers sensors,
deletes datasets and sends junk): a fixed seed, every operation, no 5xx, no answer outside the documented
statuses and schemas."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.db.migrate import upgrade
from tests.fixtures.fake_llm import FakeLLM, turn
from tests.fixtures.stack import Stack, stack_env

SEED = 7
EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def fuzz_api(redis_url: str, full_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("fuzz")
    database_url = f"sqlite:///{folder / 'fuzz.db'}"
    upgrade(database_url)
    llm = FakeLLM(default=turn("An answer."))  # the assistant's LLM: the loopback stand-in, answering every question
    llm.start()
    running = Stack(folder, stack_env(redis_url, full_model_root, database_url, DATA_DIR=str(folder / "data"),
                                      LLM_BASE_URL=llm.base_url("anthropic")))  # fmt: skip
    try:
        url = running.start_api()
        running.start_worker(concurrency=1)
        yield url
    finally:
        running.stop_all()
        llm.stop()


def test_no_input_gets_a_server_error_or_an_undocumented_answer(fuzz_api: str, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{fuzz_api}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance",
        "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED), "--request-timeout", "20", "--no-color",
        "--report-dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its cache too
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    selected, total = map(int, re.search(r"Selected: (\d+)/(\d+)", summary).groups())  # type: ignore[union-attr]
    tested = int(re.search(r"Tested: (\d+)", summary).group(1))  # type: ignore[union-attr]
    assert selected == total == tested > 25, summary
