"""The database goes away under load and comes back: every answered prediction and every accepted batch is
recorded in the end (PostgreSQL behind a proxy the test cuts; a real API and worker)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from backend.db.migrate import upgrade
from backend.db.models import BatchJob, Prediction
from backend.db.session import make_engine, session_factory
from backend.dev.processes import wait_until
from tests.api.routes.test_health import _sample
from tests.fixtures.database import POSTGRES_AVAILABLE, postgres_database
from tests.fixtures.proxy import TcpProxy
from tests.fixtures.stack import Stack, stack_env

# Short enough for every test run; OUTAGE_DRILL="60,15" (seconds of load, of outage) runs the long drill.
LOAD_SECONDS, OUTAGE_SECONDS = (float(v) for v in os.environ.get("OUTAGE_DRILL", "12,5").split(","))
OUTAGE_FROM = LOAD_SECONDS / 4


def _counts(url: str, batch_ids: list[str]) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            predictions = session.scalar(select(func.count()).select_from(Prediction)) or 0
            finished = session.scalar(
                select(func.count())
                .select_from(BatchJob)
                .where(BatchJob.id.in_(batch_ids), BatchJob.status == "success")
            )
            return predictions, finished or 0
    finally:
        engine.dispose()


def _unfinished(url: str, batch_ids: list[str], api: httpx.Client) -> list[tuple[str, str | None, str]]:
    """Batches the database does not hold as finished: (id, its database status, what the API answers)."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            stored = dict(session.execute(select(BatchJob.id, BatchJob.status).where(BatchJob.id.in_(batch_ids))).all())
    finally:
        engine.dispose()
    return [(b, stored.get(b), api.get(f"/api/predict/batch/{b}/results").json().get("status"))
            for b in batch_ids if stored.get(b) != "success"]  # fmt: skip


@pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="needs PostgreSQL")
def test_nothing_answered_is_lost_while_the_database_is_away(
    redis_url: str, small_model_root: Path, csv_rows: list[dict], tmp_path: Path
) -> None:
    with postgres_database() as direct_url:
        upgrade(direct_url)
        target = make_url(direct_url)
        proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
        proxy.start()
        proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        stack = Stack(tmp_path, stack_env(redis_url, small_model_root, proxied, DATA_DIR=str(tmp_path / "data")))
        answered, batch_ids, statuses = 0, [], []
        try:
            url = stack.start_api()
            stack.start_worker(concurrency=1)
            started = time.monotonic()

            def outage() -> None:
                time.sleep(OUTAGE_FROM)
                proxy.stop()
                time.sleep(OUTAGE_SECONDS)
                proxy.start()

            cut = threading.Thread(target=outage)
            cut.start()
            with httpx.Client(base_url=url, timeout=10) as api:
                i = 0
                while time.monotonic() - started < LOAD_SECONDS:
                    row = csv_rows[i % len(csv_rows)]
                    response = api.post("/api/predict/eclo", json=row)
                    statuses.append(response.status_code)
                    answered += response.status_code == 200
                    if i % 40 == 0:
                        batch = api.post("/api/predict/eclo/batch", json={"items": csv_rows[i % 200 : i % 200 + 5]})
                        if batch.status_code == 202:
                            batch_ids.append(batch.json()["batch_id"])
                    i += 1
                cut.join()
                assert set(statuses) == {200} and len(batch_ids) >= 5
                metrics = api.get("/metrics").text
                spilled = _sample(metrics, "db_records_total", outcome="spilled")
                recorded = wait_until(lambda: _counts(direct_url, batch_ids) == (answered, len(batch_ids)), 60)
                counts = _counts(direct_url, batch_ids)
                unfinished = _unfinished(direct_url, batch_ids, api)
        finally:
            stack.stop_all()
            proxy.stop()
    assert spilled > 0 and recorded, (
        f"answered {answered}, batches {len(batch_ids)}, spilled {spilled}: {counts}; {unfinished}"
    )
    print(f"answered {answered} predictions and {len(batch_ids)} batches around a {OUTAGE_SECONDS:.0f} s outage "
          f"({spilled:.0f} records waited on disk); recorded {counts[0]} predictions, {counts[1]} batches")  # fmt: skip
