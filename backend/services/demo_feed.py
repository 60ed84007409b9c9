"""The demo feed: the congestion model's own network (backend.ml.congestion.demo) published into the live feed with
timestamps of now, so that a first run shows a live network. At start it fast-forwards the last hour (forecasts
need it), then publishes one step of every sensor at each 5-minute mark, as road-side sensors would.

DEMO_FEED: `on` runs it; `off` never; `auto` (the default) runs it in ENVIRONMENT=local on a database holding no
readings but the demo's own (a fresh one, or one the demo fed before: each sensor's newest and oldest readings are
the values the demo gives for their times), so real readings are not mixed with it. The demo's values come from the
served model: after a retrained or promoted congestion model, its earlier readings no longer match and `auto` stays
off (`on` forces it).
Run: `python -m backend.services.demo_feed` (`make run` starts it when it would run).
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import orjson
import redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings, get_settings
from backend.core.logging import configure_logging
from backend.core.redis import sync_redis
from backend.db import readings as stored
from backend.db.session import make_engine, session_factory
from backend.ml.congestion.demo import demo_readings, demo_speeds, is_demo_speed, step_of
from backend.ml.congestion.model import CongestionModel
from backend.schemas.traffic import MAX_READINGS_PER_CALL
from backend.services.feed import publish, stream_key
from backend.services.readings import IngestOutcome, SensorDirectory, ingest
from backend.wiring import open_registry

log = logging.getLogger(__name__)
CATCH_UP_STEPS = 12  # the last hour: a forecast needs readings of the hour up to now
HEARTBEAT_SECONDS = 60
OFF_HINT = "set DEMO_FEED=off to turn it off"


def demo_key(settings: Settings) -> str:
    return f"{settings.key_prefix}readings:demo:heartbeat"


def demo_status(client: redis.Redis, settings: Settings) -> dict | None:
    """What the running demo feed says of itself, or None when none runs."""
    raw = client.get(demo_key(settings))
    return orjson.loads(raw) if raw else None


@dataclass(frozen=True)
class Decision:
    run: bool
    reason: str


def decide(settings: Settings, sessions: sessionmaker[Session], model: CongestionModel | None) -> Decision:
    """Whether the demo feed should run, and why (said by `make run` and the process itself)."""
    if settings.demo_feed == "off":
        return Decision(False, "off (DEMO_FEED=off)")
    if model is None:
        return Decision(False, "off: no congestion model to replay")
    if settings.demo_feed == "on":
        return Decision(True, f"on (DEMO_FEED=on; {OFF_HINT})")
    if settings.environment != "local":
        return Decision(False, "off: DEMO_FEED=auto runs only with ENVIRONMENT=local (DEMO_FEED=on forces it)")
    try:
        with sessions() as session:  # each sensor's newest and oldest: a real history under a sample day shows
            newest = stored.latest_per_sensor(session)
            edges = [*newest.values(), *stored.oldest_per_sensor(session, sorted(newest)).values()]
    except SQLAlchemyError:
        return Decision(False, "off: the database cannot be read")
    if not edges:
        return Decision(True, f"on: the database holds no readings ({OFF_HINT})")
    for reading in edges:
        index = model.index.get(reading.sensor_id)
        if index is None or not is_demo_speed(
            model.profiles, model.free_flow, index, reading.timestamp, reading.speed_mph
        ):
            return Decision(False, "off: the database holds readings other than the demo's (DEMO_FEED=on forces it)")
    return Decision(True, f"on: the database holds only the demo's readings ({OFF_HINT})")


def sample_readings(model: CongestionModel, until: datetime, steps: int) -> list[dict]:
    """The demo's readings of every sensor for the `steps` 5-minute steps up to `until` (the "sample day")."""
    last = step_of(until)
    readings: list[dict] = []
    for step in range(last - steps + 1, last + 1):
        readings += demo_readings(model.sensor_ids, demo_speeds(model.profiles, model.free_flow, step), step)
    return readings


def store_sample(
    sessions: sessionmaker[Session], sensors: SensorDirectory, model: CongestionModel, until: datetime, steps: int
) -> IngestOutcome:
    """`sample_readings` stored through the readings' one `ingest`, a call per MAX_READINGS_PER_CALL readings (as a
    client would send them); the outcome summed, refused indexes counted over the whole sample."""
    sample = sample_readings(model, until, steps)
    total = IngestOutcome()
    for start in range(0, len(sample), MAX_READINGS_PER_CALL):
        part = ingest(sessions, sensors, sample[start : start + MAX_READINGS_PER_CALL], "sample")
        total.accepted += part.accepted
        total.duplicates += part.duplicates
        total.rejected += [{**r, "index": start + r["index"]} for r in part.rejected]
    return total


class DemoFeed:
    def __init__(self, settings: Settings, client: redis.Redis, model: CongestionModel, reason: str) -> None:
        self.settings = settings
        self.client = client
        self.model = model
        self.stream = stream_key(settings)
        self.status = {"since": datetime.now(UTC).isoformat(), "sensors": len(model.sensor_ids),
                       "model_version": model.version, "reason": reason}  # fmt: skip

    def speeds(self, step: int) -> np.ndarray:
        return demo_speeds(self.model.profiles, self.model.free_flow, step)

    def publish_step(self, step: int) -> int:
        return publish(self.client, self.stream, demo_readings(self.model.sensor_ids, self.speeds(step), step))

    def beat(self) -> None:
        self.client.set(demo_key(self.settings), orjson.dumps(self.status), ex=HEARTBEAT_SECONDS)

    def run(self, stopping: list[str], now: datetime | None = None) -> None:
        """The last hour at once, then each step when its 5-minute mark comes; until `stopping` holds a reason."""
        next_step = step_of(now or datetime.now(UTC)) - CATCH_UP_STEPS + 1
        while not stopping:
            try:
                self.beat()
                current = step_of(datetime.now(UTC))
                while next_step <= current and not stopping:
                    published = self.publish_step(next_step)
                    log.info("demo feed: step %s, %d readings published", next_step, published)
                    next_step += 1
            except redis.RedisError as exc:
                log.warning("demo feed: %s; retrying in 1 s", exc)
            time.sleep(1)
        try:
            self.client.delete(demo_key(self.settings))
        except redis.RedisError:
            pass


def congestion_model(settings: Settings) -> CongestionModel | None:
    registry = open_registry(settings)
    if "congestion" not in registry.names():
        return None
    model = registry.get("congestion")
    return model if isinstance(model, CongestionModel) else None


def decide_for(settings: Settings) -> tuple[Decision, CongestionModel | None]:
    """The decision from the settings' own database and model (opens and closes its engine)."""
    model = congestion_model(settings) if settings.demo_feed != "off" else None
    engine = make_engine(settings.database_url)
    try:
        return decide(settings, session_factory(engine), model), model
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.services.demo_feed", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 0 if a demo feed beat lately (a health check)")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.check:
        found = demo_status(sync_redis(settings.redis_url, settings), settings)
        print("demo feed running" if found else "no demo feed heartbeat")
        return 0 if found else 1
    configure_logging(settings.log_level)
    decision, model = decide_for(settings)
    log.info("demo feed: %s", decision.reason)
    if not decision.run or model is None:
        return 0
    stopping: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stopping.append("SIGINT"))
    DemoFeed(settings, sync_redis(settings.redis_url, settings), model, decision.reason).run(stopping)
    log.info("demo feed: stopped (%s)", stopping[0] if stopping else "error")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
