"""Daily partitions of the tables that grow with time, and retention.

On PostgreSQL `traffic_readings` (by `timestamp`) and `predictions` (by `created_at`) are partitioned by range, one
partition a UTC day, kept in the schema `partitions` (named `<table>_pYYYYMMDD`) so that the service's own schema
lists only its tables. A partition is made before any row of its day is written (the statement that stores rows
asks for the days it needs; the beat makes today's and the next days' ahead of time): made as a plain table and
then attached, which locks the parent only against other DDL (SHARE UPDATE EXCLUSIVE), never against writes.
Retention detaches whole partitions CONCURRENTLY and drops them, so writers are not blocked either.

On SQLite (and on a PostgreSQL table that is not partitioned) there is nothing to make, and retention deletes
old rows in bounded steps.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, text

from backend.db.models import UtcDateTime

log = logging.getLogger(__name__)

SCHEMA = "partitions"
PARTITIONED = {"traffic_readings": "timestamp", "predictions": "created_at"}
DELETE_STEP = 5_000
_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<day>\d{8})$")


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def days_of(moments: Iterable[datetime]) -> set[date]:
    """The UTC days of these aware times."""
    return {moment.astimezone(UTC).date() for moment in moments}


def _is_postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def is_partitioned(connection: Connection, table: str) -> bool:
    if not _is_postgresql(connection):
        return False
    kind = connection.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}).scalar()
    return kind == "p"


def ensure_partitions(connection: Connection, table: str, first_day: date, last_day: date) -> list[str]:
    """Make the missing daily partitions of `table` from `first_day` to `last_day` (inclusive), in the caller's
    transaction; returns the names made. Nothing to do on SQLite or for a table that is not partitioned."""
    return ensure_days(
        connection, table, {first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)}
    )


def ensure_days(connection: Connection, table: str, days: Iterable[date]) -> list[str]:
    """`ensure_partitions` for any set of days (a write's rows may fall on days far apart)."""
    if table not in PARTITIONED:
        raise ValueError(f"{table!r} is not a partitioned table")
    wanted = sorted(set(days))
    if not wanted or not _is_postgresql(connection):
        return []
    names = [partition_name(table, day) for day in wanted]
    row = connection.execute(
        text("SELECT p.relkind, ARRAY(SELECT n FROM unnest(CAST(:names AS text[])) n "
             "WHERE to_regclass(:schema || '.' || n) IS NULL) FROM pg_class p WHERE p.oid = to_regclass(:t)"),
        {"names": names, "schema": SCHEMA, "t": table},
    ).one_or_none()  # fmt: skip
    if row is None or row[0] != "p" or not row[1]:
        return []
    missing = set(row[1])
    made = []
    for day, name in zip(wanted, names, strict=True):
        if name in missing and _make(connection, table, day, name):
            made.append(name)
    return made


def _make(connection: Connection, table: str, day: date, name: str) -> bool:
    """One partition, under a lock of its name (another process may be making it: then it is there after)."""
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": f"{SCHEMA}.{name}"})
    # A query of pg_class, not to_regclass: the lock waited for the other maker's commit, and only a fresh
    # snapshot sees it (the relation cache may not have heard of it yet).
    made_meanwhile = text("SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = :s AND c.relname = :n")  # fmt: skip
    if connection.execute(made_meanwhile, {"s": SCHEMA, "n": name}).first() is not None:
        return False
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
    connection.execute(text(f'CREATE TABLE "{SCHEMA}"."{name}" (LIKE "{table}" INCLUDING DEFAULTS)'))
    connection.execute(
        text(f'ALTER TABLE "{table}" ATTACH PARTITION "{SCHEMA}"."{name}" '
             f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
    )  # fmt: skip
    log.info("partition %s.%s made", SCHEMA, name)
    return True


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    day: date
    detach_pending: bool


def partitions_of(connection: Connection, table: str) -> list[Partition]:
    """The daily partitions of `table`, oldest first (none on SQLite)."""
    if not _is_postgresql(connection):
        return []
    rows = connection.execute(
        text("SELECT c.relname, i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = to_regclass(:t) AND n.nspname = :s"),
        {"t": table, "s": SCHEMA},
    ).all()  # fmt: skip
    found = []
    for name, pending in rows:
        match = _NAME.match(name)
        if match and match["table"] == table:
            found.append(Partition(table, name, datetime.strptime(match["day"], "%Y%m%d").date(), bool(pending)))
    return sorted(found, key=lambda p: p.day)


def drop_before(engine: Engine, table: str, cutoff: datetime) -> int:
    """Remove the rows of `table` older than `cutoff`: on a partitioned table the whole partitions that end at or
    before it (detached CONCURRENTLY, then dropped: writers go on meanwhile); elsewhere a bounded delete, step by
    step. Returns the partitions dropped (PostgreSQL) or rows deleted (otherwise)."""
    column = PARTITIONED[table]
    with engine.connect() as connection:
        partitioned = is_partitioned(connection, table)
        old = [
            p for p in partitions_of(connection, table) if p.day + timedelta(days=1) <= cutoff.astimezone(UTC).date()
        ]
    if not partitioned:
        return _delete_before(engine, table, column, cutoff)
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    for partition in old:
        with autocommit.connect() as connection:
            qualified = f'"{SCHEMA}"."{partition.name}"'
            mode = "FINALIZE" if partition.detach_pending else "CONCURRENTLY"
            connection.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION {qualified} {mode}'))
            connection.execute(text(f"DROP TABLE {qualified}"))
        log.info("partition %s dropped (retention)", partition.name)
    return len(old)


def _delete_before(engine: Engine, table: str, column: str, cutoff: datetime) -> int:
    deleted = 0
    bound = cutoff.astimezone(UTC)
    while True:
        with engine.begin() as connection:
            if _is_postgresql(connection):
                statement = (f'DELETE FROM "{table}" WHERE ctid = ANY(ARRAY(SELECT ctid FROM "{table}" '
                             f'WHERE "{column}" < :cutoff LIMIT {DELETE_STEP}))')  # fmt: skip
            else:
                statement = (f'DELETE FROM "{table}" WHERE rowid IN (SELECT rowid FROM "{table}" '
                             f'WHERE "{column}" < :cutoff LIMIT {DELETE_STEP})')  # fmt: skip
            query = text(statement).bindparams(bindparam("cutoff", type_=UtcDateTime()))
            count = connection.execute(query, {"cutoff": bound}).rowcount
        deleted += count
        if count < DELETE_STEP:
            return deleted
