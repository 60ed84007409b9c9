"""The stores' upkeep, run by Celery beat every MAINTENANCE_INTERVAL_SECONDS (`storage.upkeep`): the next days'
partitions made ahead of the writes, the readings' hours rolled up, and retention applied (readings only once
every hour they hold is rolled up, so the usual-speed profile loses nothing)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.core.config import Settings
from backend.db import rollups
from backend.db.models import LatestStoredReading, RollupMark
from backend.db.partitions import PARTITIONED, drop_before, ensure_partitions
from backend.db.session import session_scope

log = logging.getLogger(__name__)

AHEAD_DAYS = 2
ROLL_UP_HOURS_PER_STEP = 24
ROLL_UP_SECONDS = 20.0  # a pass stops rolling up after this; the next one goes on (a first pass over years)


@dataclass
class UpkeepReport:
    partitions_made: list[str] = field(default_factory=list)
    hours_rolled_up: int = 0
    readings_dropped: int = 0  # partitions on PostgreSQL, rows elsewhere
    records_dropped: int = 0
    readings_kept_back: str | None = None  # why retention waited

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def upkeep(
    settings: Settings,
    engine: Engine,
    sessions: sessionmaker[Session],
    now: datetime | None = None,
    roll_up_seconds: float = ROLL_UP_SECONDS,
) -> UpkeepReport:
    now = now or datetime.now(UTC)
    report = UpkeepReport()
    today = now.astimezone(UTC).date()
    with engine.begin() as connection:
        for table in PARTITIONED:
            report.partitions_made += ensure_partitions(connection, table, today, today + timedelta(days=AHEAD_DAYS))
    deadline = time.monotonic() + roll_up_seconds
    while True:
        with session_scope(sessions) as session:
            rolled = rollups.roll_up(session, limit_hours=ROLL_UP_HOURS_PER_STEP)
        report.hours_rolled_up += rolled
        if rolled < ROLL_UP_HOURS_PER_STEP or time.monotonic() >= deadline:
            break
    if settings.readings_retention_days:
        cutoff = now - timedelta(days=settings.readings_retention_days)
        with sessions() as session:
            pending = session.scalar(select(func.count()).select_from(RollupMark).where(RollupMark.hour < cutoff))
        if pending:
            report.readings_kept_back = f"{pending} marked hours before the cut-off are not rolled up yet"
        else:
            report.readings_dropped = drop_before(engine, "traffic_readings", cutoff)
            with session_scope(sessions) as session:
                session.execute(delete(LatestStoredReading).where(LatestStoredReading.timestamp < cutoff))
    if settings.records_retention_days:
        report.records_dropped = drop_before(
            engine, "predictions", now - timedelta(days=settings.records_retention_days)
        )
    log.info("upkeep: %s", report.as_dict())
    return report
