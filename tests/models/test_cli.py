"""`python -m backend.models` against a real uvicorn with AUTH_ENABLED=true: a read key lists, an admin key promotes
and rolls back; the API's refusals are printed as it words them, usage errors exit with 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.dev.processes import PROJECT_ROOT
from backend.ml.artifacts import read_metadata
from tests.fixtures.auth import cli
from tests.fixtures.stack import stack_of_its_own

pytestmark = pytest.mark.stack


@dataclass
class Served:
    env: dict[str, str]  # the stack's, with API_URL
    keys: dict[str, str]  # "reader", "admin"
    default: str  # the committed version of `eclo` (the test's small model)
    trained: str  # a second version under DATA_DIR/models


@pytest.fixture(scope="module")
def served(redis_url: str, small_model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("models-cli")
    models = folder / "models"
    models.mkdir()
    (models / "eclo").symlink_to(small_model_root / "eclo", target_is_directory=True)
    # The repository's committed ECLO model stands for a trained version: another version, whole and loadable.
    trained = str(read_metadata(PROJECT_ROOT / "model" / "eclo")["version"])
    shutil.copytree(PROJECT_ROOT / "model" / "eclo", folder / "data" / "models" / "eclo" / trained)
    with stack_of_its_own(folder, redis_url, models, AUTH_ENABLED="true", MODEL_RELOAD_SECONDS="1") as stack:
        keys = {}
        for name, scopes in (("reader", "read"), ("admin", "read,admin")):
            made = cli(stack.env, "create", name, "--scopes", scopes)
            assert made.returncode == 0, made.stderr
            keys[name] = made.stdout.strip()
        env = {**stack.env, "API_URL": stack.start_api()}
        yield Served(env, keys, str(read_metadata(small_model_root / "eclo")["version"]), trained)


def models_cli(served: Served, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in served.env.items() if k != "TRAFFIC_API_KEY"}
    if key:
        env["TRAFFIC_API_KEY"] = served.keys[key]
    return subprocess.run([sys.executable, "-m", "backend.models", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_list_then_promote_and_roll_back(served: Served) -> None:
    listed = models_cli(served, "list", "eclo", key="reader")
    assert listed.returncode == 0, listed.stderr
    assert f"champion {served.default}, challenger none" in listed.stdout
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[2:]}
    assert set(rows) == {served.default, served.trained}
    assert "champion, default" in rows[served.default] and "held-out RMSLE" in listed.stdout.splitlines()[1]
    assert "0.4606 (2014-2015)" in rows[served.trained]  # the committed model's own held-out figure

    refused = models_cli(served, "promote", "eclo", served.trained[:8], key="reader")
    assert refused.returncode == 1 and "lacks the 'admin' scope" in refused.stderr, refused.stderr

    promoted = models_cli(served, "promote", "eclo", served.trained[:8], key="admin")  # a prefix names the version
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.startswith(f"champion of eclo: none -> {served.trained} (every process serves it within")
    listed = models_cli(served, "list", "eclo", key="reader")
    assert f"champion {served.trained}" in listed.stdout

    back = models_cli(served, "rollback", "eclo", key="admin")
    assert back.returncode == 0, back.stderr
    assert back.stdout.startswith(f"champion of eclo: {served.trained} -> {served.default}")
    assert f"champion {served.default}" in models_cli(served, "list", "eclo", key="reader").stdout


def test_refusals_and_usage_errors_are_said_plainly(served: Served) -> None:
    unknown = models_cli(served, "list", "nope", key="reader")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.startswith("error (HTTP 404): no model named 'nope'"), unknown.stderr
    missing = models_cli(served, "promote", "eclo", "ffff0000", key="admin")
    assert missing.returncode == 1 and "model 'eclo' has no version 'ffff0000'" in missing.stderr, missing.stderr
    keyless = models_cli(served, "list", "eclo")
    assert keyless.returncode == 1 and "set TRAFFIC_API_KEY" in keyless.stderr, keyless.stderr
    both = models_cli(served, "train", "eclo", "--dataset", "x", "--since", "2026-01-01T00:00:00Z", key="admin")
    assert both.returncode == 2 and "not both" in both.stderr, both.stderr
    zoneless = models_cli(served, "drift", "eclo", "--since", "2026-01-01T00:00", key="reader")
    assert zoneless.returncode == 2 and "needs its zone" in zoneless.stderr, zoneless.stderr
