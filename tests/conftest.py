"""Shared fixtures: a small model trained once per session, a real Redis, real uvicorn and Celery processes.

Tests use their own Redis database (TEST_REDIS_URL, default db 15 of 127.0.0.1:6379; a throwaway redis-server
is started when none answers) and their own key prefix, so a running stack never sees their data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from backend.api.schemas import CLASSIC_EXAMPLE
from backend.db.migrate import upgrade
from backend.db.session import make_engine, session_factory
from backend.devstack import free_port, redis_answers, start_redis, stop, wait_until
from backend.ml.dacon import api_rows, load_dacon_csv, read_text_csv
from backend.ml.datagen import write_dacon_csv
from backend.ml.predictor import EcloModel
from backend.ml.train import save_artifacts, train_eclo

CLASSIC_ROW = CLASSIC_EXAMPLE  # the example of the design card


@pytest.fixture(scope="session")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dacon_csv(tmp_path_factory.mktemp("data") / "train.csv", n_rows=6000, seed=7)


@pytest.fixture(scope="session")
def small_model_root(tmp_path_factory: pytest.TempPathFactory, small_csv: Path) -> Path:
    """A model folder (root/eclo) trained on the small generated CSV."""
    root = tmp_path_factory.mktemp("models")
    rows, eclo, report = load_dacon_csv(small_csv)
    result = train_eclo(rows, eclo, folds=3, seed=7, log=lambda _: None)
    save_artifacts(result, root / "eclo", str(small_csv), report)
    return root


@pytest.fixture(scope="session")
def small_model(small_model_root: Path) -> EcloModel:
    return EcloModel.load(small_model_root / "eclo")


@pytest.fixture
def classic_row() -> dict:
    return dict(CLASSIC_ROW)


@pytest.fixture(scope="session")
def csv_rows(small_csv: Path) -> list[dict]:
    """API rows of the small model's own training file: every one is valid for that model."""
    rows = [row for row in api_rows(read_text_csv(small_csv)) if row is not None]
    return rows[:300]


TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# A server where the tests may create and drop their own databases; REQUIRE_POSTGRES=1 (CI) makes its absence
# a failure instead of running the database tests on SQLite only.
TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    """Processes of one test stack and the environment they share."""

    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, command: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a test can SIGKILL a worker with its children
        )  # fmt: skip
        self.processes.append(process)
        return process

    def start_api(self, **env: str) -> str:
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "backend.main:app", "--host", "127.0.0.1", "--port", str(port)]
        process = self.spawn(f"api-{port}", command, **env)
        url = f"http://127.0.0.1:{port}"

        def live() -> bool:
            assert process.poll() is None, f"API exited; see {self.logs}/api-{port}.log"
            try:
                return httpx.get(f"{url}/health/live", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(live, timeout=30), "API did not start"
        return url

    def start_worker(self, name: str = "worker", concurrency: int = 2, **env: str) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "celery", "-A", "backend.tasks", "worker", "-P", "prefork", "-c", str(concurrency),
            "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]  # fmt: skip
        process = self.spawn(name, command, **env)
        log = self.logs / f"{name}.log"
        assert wait_until(lambda: process.poll() is None and "ready." in log.read_text(errors="replace"), 60), (
            f"worker did not start; see {log}"
        )
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _postgres_reachable() -> bool:
    try:
        engine = create_engine(TEST_POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except OperationalError:
        return False


POSTGRES_AVAILABLE = _postgres_reachable()
if os.environ.get("REQUIRE_POSTGRES") == "1" and not POSTGRES_AVAILABLE:
    raise RuntimeError(f"REQUIRE_POSTGRES=1 but PostgreSQL does not answer at {TEST_POSTGRES_URL}")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of the tests' own, dropped afterwards."""
    name = f"traffic_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(TEST_POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(TEST_POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


DATABASE_KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES_AVAILABLE, reason=f"PostgreSQL does not answer at {TEST_POSTGRES_URL}"))]  # fmt: skip


@pytest.fixture(params=DATABASE_KINDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: SQLite always, PostgreSQL when it answers."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """An empty database migrated to the latest schema."""
    upgrade(empty_database_url)
    return empty_database_url


@pytest.fixture
def db_session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture(scope="session")
def stack_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session stack's database: PostgreSQL when it answers (the production shape), else SQLite."""
    if POSTGRES_AVAILABLE:
        with postgres_database() as url:
            upgrade(url)
            yield url
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'stack.db'}"
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if redis_answers(TEST_REDIS_URL):
        redis.Redis.from_url(TEST_REDIS_URL).flushdb()
        yield TEST_REDIS_URL
        return
    port = free_port()
    server = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/15"
    stop(server)


def stack_env(redis_url: str, model_root: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "MODEL_DIR": str(model_root),
        "KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}:",
        # A killed worker's task comes back after 5 s (production: 300 s); it must outlast the time limit.
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": "5",
        "BATCH_TIME_LIMIT_SECONDS": "4",
        "BATCH_SOFT_TIME_LIMIT_SECONDS": "3",
        "CELERY_UNACKED_RESTORE_INTERVAL_SECONDS": "1",
        **extra,
    }


@pytest.fixture(scope="session")
def stack(
    redis_url: str, small_model_root: Path, stack_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One API (real uvicorn) and one prefork worker with concurrency 2, shared by the session."""
    env = stack_env(redis_url, small_model_root, stack_database_url)
    running = Stack(env, tmp_path_factory.mktemp("stack-logs"))
    try:
        running.env["API_URL"] = running.start_api()
        running.start_worker()
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.env["API_URL"], timeout=30) as client:
        yield client


@pytest.fixture
def own_stack(small_model_root: Path, tmp_path: Path) -> Iterator[Stack]:
    """A stack with its own Redis server (on a free port) that a test may stop, kill and restart."""
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    redis_process = start_redis(port, tmp_path / "redis", logs / "redis.log")
    database_url = f"sqlite:///{tmp_path / 'own.db'}"
    upgrade(database_url)
    running = Stack(stack_env(f"redis://127.0.0.1:{port}/0", small_model_root, database_url), logs)
    running.env["TEST_REDIS_PORT"] = str(port)
    try:
        yield running
    finally:
        running.close()
        stop(redis_process)
