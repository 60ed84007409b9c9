"""The demo feed: when it runs (DEMO_FEED and the database's readings), and what it publishes into the live feed
of a real Redis."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db.migrate import upgrade
from backend.db.session import make_engine, session_factory
from backend.ml.congestion.model import CongestionModel
from backend.services.demo_feed import CATCH_UP_STEPS, DemoFeed, decide, demo_status, sample_readings
from backend.services.feed import stream_key
from backend.services.readings import SensorDirectory, ingest
from backend.services.traffic import register_model_sensors


@pytest.fixture(scope="module")
def model(congestion_model_dir: Path) -> CongestionModel:
    return CongestionModel.load(congestion_model_dir)


@pytest.fixture
def sessions(tmp_path: Path, model: CongestionModel) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    factory = session_factory(make_engine(url))
    register_model_sensors(factory, model)
    return factory


def _settings(redis_url: str, demo_feed: str, environment: str = "local") -> Settings:
    """Production's other checks (passwords) are not this test's: its environment is set past validation."""
    settings = Settings(redis_url=redis_url, key_prefix=f"demo-{uuid.uuid4().hex[:8]}:", demo_feed=demo_feed)  # type: ignore[arg-type]
    return settings.model_copy(update={"environment": environment})


def test_off_never_runs_and_on_always_does(
    redis_url: str, sessions: sessionmaker[Session], model: CongestionModel
) -> None:
    assert not decide(_settings(redis_url, "off"), sessions, model).run
    assert decide(_settings(redis_url, "on", "production"), sessions, model).run
    assert not decide(_settings(redis_url, "on"), sessions, None).run  # nothing to replay


def test_auto_runs_on_a_database_of_no_readings_or_only_its_own(
    redis_url: str, sessions: sessionmaker[Session], model: CongestionModel
) -> None:
    auto = _settings(redis_url, "auto")
    first = decide(auto, sessions, model)
    assert first.run and "no readings" in first.reason and "DEMO_FEED=off" in first.reason
    directory = SensorDirectory(sessions)
    outcome = ingest(sessions, directory, sample_readings(model, datetime.now(UTC), 3), "sample")
    assert outcome.accepted == 3 * len(model.sensor_ids) and not outcome.rejected
    assert decide(auto, sessions, model).run  # the demo's own readings: a restarted `make run` goes on
    assert not decide(_settings(redis_url, "auto", "production"), sessions, model).run
    real = {"sensor_id": model.sensor_ids[0], "timestamp": datetime.now(UTC).isoformat(), "speed_mph": 12.34}
    assert ingest(sessions, directory, [real], "rest").accepted == 1
    refused = decide(auto, sessions, model)
    assert not refused.run and "other than the demo's" in refused.reason


def test_auto_stays_off_when_a_real_history_lies_under_a_sample_day(
    redis_url: str, sessions: sessionmaker[Session], model: CongestionModel
) -> None:
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).isoformat()
    real = {"sensor_id": model.sensor_ids[0], "timestamp": three_days_ago, "speed_mph": 12.34}
    directory = SensorDirectory(sessions)
    assert ingest(sessions, directory, [real], "rest").accepted == 1
    ingest(sessions, directory, sample_readings(model, datetime.now(UTC), 3), "sample")  # every newest: the demo's
    assert not decide(_settings(redis_url, "auto"), sessions, model).run


def test_the_feed_fast_forwards_the_last_hour_then_beats_and_says_so(redis_url: str, model: CongestionModel) -> None:
    settings = _settings(redis_url, "on")
    client = redis.Redis.from_url(redis_url)
    feed = DemoFeed(settings, client, model, "on (test)")
    stopping: list[str] = []
    runner = threading.Thread(target=feed.run, args=(stopping,))
    runner.start()
    stream = stream_key(settings)
    try:
        expected = CATCH_UP_STEPS * len(model.sensor_ids)
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while client.xlen(stream) < expected and datetime.now(UTC) < deadline:
            threading.Event().wait(0.1)
        status = demo_status(client, settings)
        assert status is not None and status["sensors"] == len(model.sensor_ids)
    finally:
        stopping.append("test")
        runner.join(10)
    messages = client.xrange(stream)
    assert len(messages) in (expected, expected + len(model.sensor_ids))  # a 5-minute mark may pass meanwhile
    times = sorted({datetime.fromisoformat(orjson.loads(fields[b"reading"])["timestamp"]) for _, fields in messages})
    now = datetime.now(UTC)
    assert timedelta(0) <= now - times[-1] < timedelta(minutes=5)
    assert times[-1] - times[0] >= timedelta(minutes=5 * (CATCH_UP_STEPS - 1))
    assert all(b - a == timedelta(minutes=5) for a, b in zip(times, times[1:], strict=False))
    assert demo_status(client, settings) is None  # gone when it stops: the dashboard stops calling it a demo
    client.delete(stream)
