"""test_mvp.sh against the real session stack, and against nothing."""

from __future__ import annotations

import subprocess

from tests.fixtures.stack import PROJECT_ROOT, Stack

SCRIPT = str(PROJECT_ROOT / "test_mvp.sh")


def test_smoke_test_passes_against_the_stack(stack: Stack, registered_sensors: list[str]) -> None:
    result = subprocess.run([SCRIPT, stack.env["API_URL"]], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS") == 17 and "0 check(s) failed" in result.stdout


def test_exit_status_counts_the_failures() -> None:
    result = subprocess.run([SCRIPT, "http://127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 17 and result.stdout.count("FAIL") == 17


def test_help_documents_the_checks() -> None:
    result = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0 and "exit status is the number of failed checks" in result.stdout
